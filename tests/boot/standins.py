"""What an EC2 instance reaches at boot, stood in for inside the test's network namespace:
the test PKI, the agents' stub packages, the instance's metadata and boot inputs, and the
stand-in servers (tests/boot/standin_servers.py), each started and killed by pid here.

    169.254.169.254:80   IMDSv2, with the user data as EC2 serves it
    192.0.2.10:80        the Debian mirror (its host name maps here in the root's /etc/hosts):
                         the package lists captured at build time and the downloaded .debs,
                         then what a test adds under `mirror_updates` (an archive's update)
    192.0.2.20:443       AWS APIs (Parameter Store, CloudWatch, Logs, Auto Scaling, EC2, ELB):
                         moto behind TLS, plus what moto lacks
    192.0.2.30:80,443    the agents' download hosts (stub .debs signed by a per-run key) and
                         the stack's package bucket (SigV4 checked, as S3 does)

TLS uses a CA made per run, which the machine's trust store holds.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import shutil
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rootfs import run

if TYPE_CHECKING:
    from stun_infra.instance.downloads import AgentPackage
    from tests.support.signing import TestKey

SERVERS = Path(__file__).resolve().with_name("standin_servers.py")
IMDS_IP = "169.254.169.254"
MIRROR_IP = "192.0.2.10"
AWS_API_IP = "192.0.2.20"
DOWNLOADS_IP = "192.0.2.30"
SANDBOX_BUCKET = "stun-infra-sandbox0000000000000000000"  # as long as the stack's (artifact.BUCKET_NAME_LENGTH)
MOTO_PLAIN_PORT = 4566  # moto's plain-HTTP listener on the namespace's loopback (seeding, reading back)
CLIENT_IP = "198.51.100.7"  # a STUN/TURN client inside the namespace
CALLS_LOG = "/var/log/stun-infra-sandbox/calls.log"  # what the stub agents were asked


def stop_process(p: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group of `p` (started with a session of its own), then SIGKILL."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=timeout)


# -- test PKI --------------------------------------------------------------------------

def make_pki(out: Path, names: list[str]) -> dict[str, Path]:
    """A CA and one server certificate for `names`; the chroot trusts the CA."""
    from stun_infra.common import certificates

    hour, lifetime = datetime.timedelta(hours=-1), datetime.timedelta(days=2, hours=1)
    ca, ca_key = certificates.make_ca("stun-infra boot sandbox CA", valid_from=hour, valid_for=lifetime)
    key = certificates.new_key()
    cert = certificates.make_certificate(names, key, issuer=(ca, ca_key), server=True, valid_from=hour,
                                         valid_for=lifetime)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ca": out / "ca.crt", "cert": out / "server.crt", "key": out / "server.key"}
    paths["ca"].write_text(certificates.certificate_pem(ca))
    paths["cert"].write_text(certificates.certificate_pem(cert))
    paths["key"].write_text(certificates.key_pem(key))
    return paths


def self_signed(common_name: str) -> tuple[str, str]:
    """(certificate PEM, private key PEM) for the TLS parameters, as Parameter Store holds them."""
    from stun_infra.common import certificates

    cert, key = certificates.self_signed(common_name, days=2)
    return cert.strip(), key.strip()


# -- stub packages ---------------------------------------------------------------------

RECORDER = f"""#!/bin/sh
# stun-infra boot sandbox stub: records its call, does nothing else.
mkdir -p {os.path.dirname(CALLS_LOG)}
{{ printf '%s' "${{0##*/}}"; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'; }} >> {CALLS_LOG}
exit 0
"""


# What AWS's .deb does before it unpacks: the user its run_as_user names (the same commands as
# https://github.com/aws/amazon-cloudwatch-agent/blob/main/packaging/debian/preinst).
CLOUDWATCH_AGENT_PREINST = """#!/bin/sh
if ! grep "^cwagent:" /etc/group >/dev/null 2>&1; then
    groupadd -r cwagent >/dev/null 2>&1
fi
if ! id cwagent >/dev/null 2>&1; then
    useradd -r -M cwagent -d /home/cwagent -g cwagent -c "Cloudwatch Agent" -s /usr/sbin/nologin >/dev/null 2>&1
fi
"""


def cloudwatch_agent_deb(out_dir: Path, arch: str) -> Path:
    from tests.support.signing import build_deb
    base = "/opt/aws/amazon-cloudwatch-agent"
    return build_deb(out_dir, "amazon-cloudwatch-agent", arch, {
        f"{base}/bin/amazon-cloudwatch-agent-ctl": RECORDER,
        f"{base}/bin/amazon-cloudwatch-agent": RECORDER,
        f"{base}/etc/.keep": "",
        "/etc/systemd/system/amazon-cloudwatch-agent.service":
            f"[Unit]\nDescription=Amazon CloudWatch Agent (sandbox stub)\n[Service]\n"
            f"ExecStart={base}/bin/amazon-cloudwatch-agent\n[Install]\nWantedBy=multi-user.target\n",
    }, preinst=CLOUDWATCH_AGENT_PREINST)


def ssm_agent_deb(out_dir: Path, arch: str) -> Path:
    from tests.support.signing import build_deb
    return build_deb(out_dir, "amazon-ssm-agent", arch, {
        "/usr/bin/amazon-ssm-agent": RECORDER,
        "/lib/systemd/system/amazon-ssm-agent.service":
            "[Unit]\nDescription=amazon-ssm-agent (sandbox stub)\n[Service]\n"
            "ExecStart=/usr/bin/amazon-ssm-agent\n[Install]\nWantedBy=multi-user.target\n",
    })


# -- the instance and its boot inputs ---------------------------------------------------

@dataclass
class Instance:
    """What the metadata service says about the instance."""

    public_ip: str = "203.0.113.45"
    private_ip: str = "10.42.1.23"
    prefix_len: int = 24
    instance_id: str = "i-0123456789abcdef0"
    region: str = "eu-west-3"
    availability_zone: str = "eu-west-3a"
    instance_type: str = "t3.small"
    image_id: str = "ami-0sandbox0000000"
    role: str = "stun-infra-boot-instance"
    mac: str = "0a:00:00:00:00:01"
    ipv6: str = ""
    group_name: str = "stun-infra-sandbox-asg-0123"  # its aws:autoscaling:groupName tag (EC2 DescribeTags)

    @classmethod
    def of(cls, settings, **changes) -> "Instance":  # noqa: ANN001
        """An instance of the stack `settings` describes (its region, first zone, type)."""
        return cls(region=settings.region, availability_zone=settings.region + "a",
                   instance_type=settings.instance_type, **changes)

    def imds_document(self, arch: str) -> dict:
        return {**self.__dict__, "architecture": "x86_64" if arch == "amd64" else arch,
                "local_hostname": f"ip-{self.private_ip.replace('.', '-')}.{self.region}.compute.internal",
                "access_key_id": "ASIASANDBOXINSTANCE1", "secret_access_key": "sandbox-secret-key",
                "session_token": "sandbox-session-token"}

    def metadata(self, arch: str) -> dict[str, str]:
        """What IMDS answers under /latest/: path -> text (the role's credentials valid 6 h)."""
        doc, mac, stamp = self.imds_document(arch), self.mac, "%Y-%m-%dT%H:%M:%SZ"
        now = datetime.datetime.now(datetime.timezone.utc)
        credentials = {"Code": "Success", "LastUpdated": now.strftime(stamp), "Type": "AWS-HMAC",
                       "AccessKeyId": doc["access_key_id"], "SecretAccessKey": doc["secret_access_key"],
                       "Token": doc["session_token"], "Expiration": (now + datetime.timedelta(hours=6)).strftime(stamp)}
        identity = {"accountId": "123456789012", "architecture": doc["architecture"], "imageId": self.image_id,
                    "availabilityZone": self.availability_zone, "instanceId": self.instance_id,
                    "instanceType": self.instance_type, "privateIp": self.private_ip, "region": self.region,
                    "version": "2017-09-30"}
        meta = {"ami-id": self.image_id, "hostname": doc["local_hostname"], "instance-id": self.instance_id,
                "instance-type": self.instance_type, "local-hostname": doc["local_hostname"],
                "local-ipv4": self.private_ip, "mac": mac, "placement/availability-zone": self.availability_zone,
                "placement/region": self.region, "public-ipv4": self.public_ip,
                "iam/info": json.dumps({"Code": "Success", "InstanceProfileId": "AIPAEXAMPLE", "InstanceProfileArn":
                                        f"arn:aws:iam::123456789012:instance-profile/{self.role}"}),
                f"iam/security-credentials/{self.role}": json.dumps(credentials),
                f"network/interfaces/macs/{mac}/local-ipv4s": self.private_ip,
                f"network/interfaces/macs/{mac}/public-ipv4s": self.public_ip,
                **({"ipv6": self.ipv6} if self.ipv6 else {})}
        return {**{f"meta-data/{k}": v for k, v in meta.items()},
                "dynamic/instance-identity/document": json.dumps(identity, indent=2)}


def ipv6_target_groups(settings) -> tuple:
    """Autoscale dual stack: stand-ins for the load balancer's IPv6 target groups (the
    `stun-infra render --ipv6-target-group` values), on coturn's STUN and TLS ports."""
    from stun_infra.instance.nlb_targets import TargetGroupPort

    if not (settings.autoscale and settings.ipv6):
        return ()
    arn = f"arn:aws:elasticloadbalancing:{settings.region}:123456789012:targetgroup/{{}}/0123456789abcdef"
    return (TargetGroupPort(arn.format("sandbox-stun-v6"), settings.stun_port),
            TargetGroupPort(arn.format("sandbox-tls-v6"), settings.tls.coturn_port))


def sandbox_boot_inputs(settings, instance: "Instance", signer: "TestKey", **changes):
    """(what `stun-infra render --parameter-version 1` uses for this instance, what the sandbox
    runs): the same boot inputs but for the sandbox's signing key in place of AWS's."""
    import dataclasses

    from stun_infra.instance.boot_inputs import BootInputs, ParameterNames

    names = ParameterNames.under(settings.ssm_path, settings.turn).at(1, 1, 1)
    production = BootInputs(parameters=names, expected_public_ip="" if settings.autoscale else instance.public_ip,
                            ipv6_target_groups=ipv6_target_groups(settings))
    return production, dataclasses.replace(production, agents=signer.in_place_of_aws(production.agents), **changes)


def seeded_parameters(settings, *, tls: bool = True) -> tuple[dict[str, str], str]:  # noqa: ANN001
    """What Parameter Store holds for a stack (a fresh TURN secret if it relays; with `tls`, a
    self-signed certificate and key, as without a zone), and the secret."""
    import dataclasses

    from stun_infra.instance.boot_inputs import ParameterNames

    names = ParameterNames.under(settings.ssm_path, settings.turn, tls=tls)
    secret = "sandbox-turn-secret-" + os.urandom(12).hex()
    values = (secret, *(self_signed(settings.tls_domain) if tls else ("", "")))
    return {name: value for name, value in zip(dataclasses.astuple(names), values) if name}, secret


class StandIns:
    """The stand-in servers of one sandbox, inside its network namespace `netns`."""

    def __init__(self, netns: str, workdir: Path, instance: Instance, arch: str, *, parameters: dict[str, str],
                 signer: TestKey, log_group: str, bucket: str, mirror: Path, debs: Path) -> None:
        self.netns, self.workdir, self.instance, self.arch = netns, workdir, instance, arch
        self.parameters, self.signer, self.log_group, self.bucket = parameters, signer, log_group, bucket
        self.mirror, self.debs = mirror, debs
        self.mirror_updates = workdir / "mirror-updates"  # served beside the captured mirror
        self.logs = workdir / "logs"
        self.www = workdir / "www"
        self.user_data_file = workdir / "user-data"
        self.lifecycle_state_file = workdir / "target-lifecycle-state"
        self.faults_file = workdir / "download-faults.json"  # {URL path: fault}, read on every request
        self.pki: dict[str, Path] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    @property
    def bucket_host(self) -> str:
        return f"{self.bucket}.s3.{self.instance.region}.amazonaws.com"

    def hosts(self, extra: dict[str, str]) -> dict[str, str]:
        """Name -> stand-in address of every AWS host the instance reaches (the production
        names, so the script runs unchanged)."""
        from stun_infra.instance import downloads

        region = self.instance.region
        hosts = {f"{service}.{region}.amazonaws.com": AWS_API_IP
                 for service in ("ssm", "monitoring", "logs", "ec2", "autoscaling", "elasticloadbalancing")}
        for host in downloads.documented_hosts():
            if host not in (IMDS_IP, downloads.PACKAGE_HOST):
                hosts[host.replace("{region}", region)] = DOWNLOADS_IP
        hosts[self.bucket_host] = DOWNLOADS_IP
        return {**hosts, **extra}

    def start(self, hosts: dict[str, str]) -> None:
        for d in ("logs", "www"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        self.pki = make_pki(self.workdir / "pki", [n for n, ip in hosts.items() if ip in (AWS_API_IP, DOWNLOADS_IP)])
        self.start_imds()
        self.mirror_updates.mkdir(exist_ok=True)
        tls = {"cert": str(self.pki["cert"]), "key": str(self.pki["key"])}
        self._spawn("mirror", "files", **tls, bind=MIRROR_IP, root=[str(self.mirror), str(self.mirror_updates)],
                    pool_dir=str(self.debs), faults="", signed_host="", tls=False)
        self.publish_agents()
        role = self.instance.imds_document(self.arch)
        self._spawn("downloads", "files", **tls, bind=DOWNLOADS_IP, root=[str(self.www)], pool_dir="",
                    faults=str(self.faults_file), signed_host=self.bucket_host, tls=True,
                    signing_secret=role["secret_access_key"], signing_token=role["session_token"])
        self._spawn("ssm", "ssm", **tls, bind=AWS_API_IP, region=self.instance.region, parameters=self.parameters,
                    seed_port=MOTO_PLAIN_PORT, log_group=self.log_group, group_name=self.instance.group_name,
                    timeout=90)

    def start_imds(self) -> None:
        """(Re)start IMDS with the instance's current document (a stop and start: a new public IPv4)."""
        self.stop("imds")
        self._spawn("imds", "imds", metadata=self.instance.metadata(self.arch),
                    lifecycle=str(self.lifecycle_state_file), user_data=str(self.user_data_file))

    def set_lifecycle_state(self, state: str | None) -> None:
        """What IMDS answers for autoscaling/target-lifecycle-state (None: 404)."""
        if state is None:
            self.lifecycle_state_file.unlink(missing_ok=True)
        else:
            self.lifecycle_state_file.write_text(state + "\n")

    def _spawn(self, label: str, kind: str, *, timeout: float = 30, **config: object) -> None:
        """Start stand-in `label` (standin_servers.py KIND) with `config`, its requests logged
        to logs/LABEL.jsonl; wait until it says it is ready."""
        path = self.workdir / f"{label}.json"  # holds the seeded secrets: the owner's only
        path.touch(mode=0o600)
        path.write_text(json.dumps({**config, "log": str(self.logs / f"{label}.jsonl")}))
        out = open(self.logs / f"{label}.out", "a")
        p = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, str(SERVERS), kind, str(path)],
                             stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True)
        self._procs[label] = p
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(p.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or ready[0].strip() != "ready":
            raise RuntimeError(f"stand-in {label} did not start within {timeout}s:\n"
                               f"{(self.logs / f'{label}.out').read_text()[-3000:]}")

    def stop(self, label: str | None = None) -> None:
        """Stop one stand-in (or all), by its process group."""
        for name in ([label] if label else list(self._procs)):
            p = self._procs.pop(name, None)
            if p is not None:
                stop_process(p)

    def requests(self, label: str) -> list[dict]:
        f = self.logs / f"{label}.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []

    def publish_package(self, data: bytes, key: str) -> None:
        target = self.www / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def agent_path(self, agent: AgentPackage, url: str | None = None) -> Path:
        """Where the downloads stand-in serves `url` (default: the agent's package) from."""
        url = (url or agent.url).format(region=self.instance.region, arch=self.arch)
        return self.www / urllib.parse.urlsplit(url).path.lstrip("/")

    def publish_agents(self, *, arch: str | None = None) -> None:
        """Serve each agent .deb (a stub for `arch`, default the instance's), its detached
        signature by the sandbox key, and the key file where the production key URL is."""
        from stun_infra.instance import downloads

        self.faults_file.write_text("{}")
        for agent, build in ((downloads.CLOUDWATCH_AGENT, cloudwatch_agent_deb), (downloads.SSM_AGENT, ssm_agent_deb)):
            deb = self.agent_path(agent)
            deb.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(build(self.workdir, arch or self.arch), deb)
            self.signer.sign(deb, deb.with_name(deb.name + ".sig"))
            if agent.key.url:
                key = self.agent_path(agent, agent.key.url)
                key.parent.mkdir(parents=True, exist_ok=True)
                key.write_text(self.signer.armored)
