"""What the instance package needs besides the settings: values known only at `pulumi up`
(parameter versions, the exported certificate, the load balancer's IPv6 target groups),
and, per instance, the Elastic IP it waits for (static mode, in its user data)."""

from __future__ import annotations

from dataclasses import dataclass

from stun_infra.instance import nlb_targets
from stun_infra.instance.downloads import AGENTS, DOWNLOAD_SECONDS, AgentPackage


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
