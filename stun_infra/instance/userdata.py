"""The boot script: templates/user-data.sh.j2 with coturn's config, the CloudWatch agent's
config and the service files embedded, so one rendering holds all an instance does.

It carries parameter names, never a secret: the instance reads the values from
Parameter Store with its role at boot.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass

from stun_infra.instance import binding_counters, drain, metrics, nlb_targets, tls_ports, tls_sync
from stun_infra.instance.coturn import INSTANCE_PATHS, coturn_tls_ports, turnserver_conf
from stun_infra.instance.downloads import AGENTS, DOWNLOAD_SECONDS, AgentPackage
from stun_infra.settings import Settings
from stun_infra.instance.templating import render

PACKAGES = ("coturn", "awscli", "nftables", "curl", "ca-certificates", "logrotate", "python3")
MAX_USER_DATA_BYTES = 16 * 1024


@dataclass(frozen=True)
class ParameterNames:
    """Where the boot script finds each value; "" when there is none (STUN only)."""

    turn_secret: str
    tls_certificate: str
    tls_private_key: str

    @classmethod
    def under(cls, path: str, turn: bool, tls: bool = True) -> "ParameterNames":
        """`tls` false: no certificate in Parameter Store (ACM's, exported or at the NLB)."""
        return cls(turn_secret=f"{path}/turn-shared-secret" if turn else "",
                   tls_certificate=f"{path}/tls-certificate" if tls else "",
                   tls_private_key=f"{path}/tls-private-key" if tls else "")

    def at(self, turn_secret: int | None, tls_certificate: int | None, tls_private_key: int | None
           ) -> "ParameterNames":
        """Each name pinned to a version (`name:N`, a selector `aws ssm get-parameter` takes): a
        renewed certificate or rotated secret changes the boot script, so it rolls out."""
        def pin(name: str, version: int | None) -> str:
            return f"{name}:{version}" if name and version else name
        return ParameterNames(turn_secret=pin(self.turn_secret, turn_secret),
                              tls_certificate=pin(self.tls_certificate, tls_certificate),
                              tls_private_key=pin(self.tls_private_key, tls_private_key))


@dataclass(frozen=True)
class BootInputs:
    """What the boot script needs besides the settings."""

    parameters: ParameterNames
    expected_public_ip: str = ""  # static mode: the Elastic IP to wait for
    certificate_arn: str = ""     # static mode with ACM: the exportable certificate coturn serves
    # Autoscale, dual stack: the load balancer's IPv6 target groups the instance joins.
    ipv6_target_groups: tuple[nlb_targets.TargetGroupPort, ...] = ()
    # The agent packages and the keys that sign them (the sandbox swaps in its test key;
    # production keys stay pinned in stun_infra/instance/downloads.py).
    agents: tuple[AgentPackage, ...] = AGENTS
    download_seconds: int = DOWNLOAD_SECONDS  # per download, retries included


def agent_config(settings: Settings, log_file: str = INSTANCE_PATHS.log_file) -> str:
    """The CloudWatch agent's JSON config."""
    text = render(
        "amazon-cloudwatch-agent.json.j2",
        namespace=metrics.namespace(settings.stack),
        log_group_name=metrics.log_group_name(settings.project, settings.stack),
        log_file=log_file,
        autoscale=settings.autoscale,
    )
    return json.dumps(json.loads(text), indent=2) + "\n"


def render_user_data(settings: Settings, boot: BootInputs, *, check_size: bool = True) -> str:
    # Two renderings, the instance writes one: with its IPv6 address when IMDS has one, else
    # without (today's IPv4-only VPC). Each equals `stun-infra render` for the same inputs.
    boot_values = dict(public_ip="${PUBLIC_IPV4}", private_ip="${PRIVATE_IPV4}",
                       turn_secret="${TURN_SECRET}", paths=INSTANCE_PATHS)
    conf = turnserver_conf(settings, **boot_values)
    conf_ipv6 = turnserver_conf(settings, **boot_values, ipv6="${IPV6}")
    text = render(
        "user-data.sh.j2",
        settings=settings,
        boot=boot,
        packages=" ".join(PACKAGES),
        turnserver_conf=conf,
        turnserver_conf_ipv6=conf_ipv6,
        privileged_ports=sorted(p for p in (settings.stun_port, *coturn_tls_ports(settings)) if p < 1024),
        tls_ports=tls_ports.boot_files(settings),
        tls_sync=tls_sync.boot_files(boot.certificate_arn) if settings.acm_export else None,
        agent_config=agent_config(settings),
        paths=INSTANCE_PATHS,
        counters=binding_counters.boot_files(settings),
        drain=drain.boot_files(settings, ipv6_target_groups=bool(boot.ipv6_target_groups)),
        nlb_targets=nlb_targets.boot_files(list(boot.ipv6_target_groups)) if boot.ipv6_target_groups else None,
        log_group=metrics.log_group_name(settings.project, settings.stack),
    )
    if check_size:
        packed(text)  # fail here, at plan time, if it would not fit
    return text


def gzipped(script: str) -> bytes:
    return gzip.compress(script.encode(), mtime=0)


def user_data_bytes(script: str) -> int:
    """What counts against EC2's 16 KB user-data limit: the gzipped script (before base64)."""
    return len(gzipped(script))


def packed(script: str) -> str:
    """What EC2 receives: the script gzipped (cloud-init unpacks it), base64 for the API.

    Compression leaves room under EC2's 16 KB limit; mtime=0 keeps the bytes, and so the
    diff, stable from one `pulumi up` to the next.
    """
    data = gzipped(script)
    if len(data) > MAX_USER_DATA_BYTES:
        raise ValueError(f"user-data is {len(data)} bytes gzipped; EC2 accepts at most {MAX_USER_DATA_BYTES}")
    return base64.b64encode(data).decode()


def unpacked(payload: str) -> str:
    return gzip.decompress(base64.b64decode(payload)).decode()
