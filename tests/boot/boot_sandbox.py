"""The boot sandbox's machine: the cached Debian 12 root (rootfs.py) on an overlay, booted by
`systemd-nspawn --boot` with systemd as PID 1 inside the test's network namespace, where
the stand-ins (standins.py) answer. cloud-init's EC2 datasource reads the user data from
the IMDS stand-in, as on EC2, and runs it once per instance; the test reads cloud-init's own
result. Power off, start (a new public IPv4 in IMDS) and reboot are real: the container's
systemd stops every unit (ExecStop runs) and the next start boots the same disk again.

The machine is not registered with machined (`--register=no`) and runs in the caller's
cgroup (`--keep-unit`); it is reached with nsenter and ended by the pid of its nspawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rootfs import CHROOT_PATH, REPO, RootfsCache, ensure_rootfs, host_arch, log, mounts_under, run, umount_all  # noqa: F401
from standins import (AWS_API_IP, CLIENT_IP, DOWNLOADS_IP, IMDS_IP, MIRROR_IP, MOTO_PLAIN_PORT,  # noqa: F401
                      SANDBOX_BUCKET, Instance, StandIns, ipv6_target_groups, sandbox_boot_inputs,
                      seeded_parameters, stop_process)
from stun_infra.settings import DEBIAN_ARCH  # noqa: F401  (settings.architecture -> dpkg's name)

OVERLAY_SOURCE = "stun-infra-boot"
CLIENT_IPV6 = "2001:db8:ffff::7"  # a STUN client over IPv6, for instances given an IPv6 address
HOST_NFT_DIR = "/usr/local/lib/stun-infra-sandbox/host-nft"  # emulated roots only: see Machine._host_nft
SANDBOX_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
USER_DATA_SCRIPT = "/var/lib/cloud/instance/scripts/part-001"
# The EC2 datasource, reached at the metadata address only; networking is the namespace's
# (cloud-init writes no network config). Debian's own cloud.cfg is kept as it is.
CLOUD_CFG = f"""\
# stun-infra boot sandbox: what the EC2 platform's identification gives an AMI's cloud-init
datasource_list: [ Ec2 ]
datasource:
  Ec2:
    metadata_urls: [ "http://{IMDS_IP}" ]
    timeout: 5
    max_wait: 30
network: {{config: disabled}}
locale: C.UTF-8
"""
# The one deviation in every unit's environment (the user data runs in cloud-final.service):
# Debian's awscli trusts only its bundled cacert.pem, not the system store with the sandbox CA.
SYSTEM_CONF = f"[Manager]\nDefaultEnvironment=AWS_CA_BUNDLE={SANDBOX_CA_BUNDLE}\n"
# What systemd 252 cannot start under qemu-user (7.2): the units that load credentials
# (LoadCredential=) fail with "Failed to set up credentials: Invalid argument", status
# 243/CREDENTIALS (tests/boot/README.md). None of them is ours; the users and directories they
# would create are there from the package installs.
EMULATION_FAILURES = ("systemd-sysusers.service", "systemd-tmpfiles-setup.service",
                      "systemd-tmpfiles-setup-dev.service")
_STAGE_END = re.compile(r"^stun-infra: stage (\S+) end \(([0-9]+\.[0-9]+) s\)$", re.M)
_SCRIPT_EXIT = re.compile(r"Command: \['" + re.escape(USER_DATA_SCRIPT) + r"'\]\s*\nExit code: (\d+)")


_EVENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - handlers\.py\[DEBUG\]: (start|finish): "
                    r"modules-final/config-scripts-user: (.*)$")


def _log_time(stamp: str) -> float:
    """cloud-init.log's time stamp (the machine runs on UTC) as a Unix time."""
    import datetime

    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def wait_until(what: str, check, timeout: float, *, interval: float = 0.2):  # noqa: ANN001, ANN201
    """`check()`'s first true answer, asked every `interval` s; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(interval)
    return found


def stage_timings(output: str) -> dict[str, float]:
    """The script's own `stun-infra: stage NAME end (S s)` figures."""
    return {m[1]: float(m[2]) for m in _STAGE_END.finditer(output)}


@dataclass
class Boot:
    """One power-on, as cloud-init and systemd report it."""

    status: str  # cloud-init's: done, error, or `timeout` when it did not finish
    errors: list[str]  # cloud-init's result.json v1.errors
    system: str  # `systemctl is-system-running`: running, degraded, ...
    failed_units: list[str]
    output: str  # what the user data printed during this boot (cloud-init-output.log)
    script_ran: bool  # cloud-init ran the user data in this boot (once per instance)
    returncode: int  # its exit status (0 when it succeeded or did not run)
    seconds: float  # power on to cloud-init done
    script_seconds: float  # cloud-init's scripts_user module
    stages: dict[str, float] = field(default_factory=dict)
    failures: str = ""  # the failed units' journal
    emulation_failures: list[str] = field(default_factory=list)  # EMULATION_FAILURES that failed

    @property
    def clean(self) -> bool:
        """cloud-init succeeded and systemd's start-up finished with no failed unit (under
        qemu-user: none but EMULATION_FAILURES)."""
        return self.status == "done" and not self.failed_units and (
            self.system == "running" or (self.system == "degraded" and bool(self.emulation_failures)))

    def summary(self, lines: int = 60) -> str:
        """For an assertion message: the outcome, the failed units' journal, the output's end."""
        return "\n".join([f"cloud-init {self.status} {self.errors}, system {self.system}, failed {self.failed_units}",
                          self.failures[-3000:], *self.output.splitlines()[-lines:]])


def remove_netns(name: str) -> str:
    """Kill what runs in network namespace `name` (ours: its machine, its stand-ins), by pid,
    and remove it; `ip`'s complaint if that failed."""
    for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    p = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
    return p.stderr.strip() if p.returncode else ""


def cleanup_stale() -> list[str]:
    """Undo what a killed earlier run (its pid is gone) left: the processes in its namespace
    (its machine among them), the namespace, its overlay. Touches only names this module
    makes (`stun-infra-boot-<pid>`)."""
    done = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for ns, pid in re.findall(rf"^({OVERLAY_SOURCE}-(\d+))\b", listing, re.M):
        if not Path(f"/proc/{pid}").exists():
            remove_netns(ns)
            done.append(f"netns {ns}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, source = post.split()[:2]
        m = re.fullmatch(rf"{OVERLAY_SOURCE}-(\d+)", source)
        if fstype == "overlay" and m and not Path(f"/proc/{m[1]}").exists():
            target = Path(pre.split()[4].replace("\\040", " "))
            umount_all(target)
            done.append(f"mount {target}")
    for item in done:
        log(f"cleaned up after a killed run: {item}")
    return done


@dataclass
class Sandbox:
    cache: RootfsCache
    workdir: Path
    instance: Instance = field(default_factory=Instance)
    parameters: dict[str, str] = field(default_factory=dict)
    extra_hosts: dict[str, str] = field(default_factory=dict)  # name -> stand-in address
    signer: object = None  # a TestKey signing the agent packages served (default: a fresh key)
    log_group: str = "stun-infra-sandbox"  # the stack's CloudWatch Logs group, created in moto
    bucket: str = SANDBOX_BUCKET
    name: str = field(default_factory=lambda: f"{OVERLAY_SOURCE}-{os.getpid()}")

    def __post_init__(self) -> None:
        self.arch = self.cache.info["arch"]
        self.root = self.workdir / "merged"
        self.logs = self.workdir / "logs"
        if self.signer is None:
            from tests.support.signing import TestKey
            self.signer = TestKey(self.workdir / "signer")
        self.standins = StandIns(self.name, self.workdir, self.instance, self.arch, parameters=self.parameters,
                                 signer=self.signer, log_group=self.log_group, bucket=self.bucket,
                                 mirror=self.cache.mirror, debs=self.cache.debs)
        self._nspawn: subprocess.Popen | None = None
        self._netns = False

    # -- set up and tear down ------------------------------------------------------------

    def __enter__(self) -> "Sandbox":
        try:
            for d in ("upper", "work", "merged", "logs"):
                (self.workdir / d).mkdir(parents=True, exist_ok=True)
            cleanup_stale()
            run(["mount", "-t", "overlay", f"{OVERLAY_SOURCE}-{os.getpid()}", "-o",
                 f"lowerdir={self.cache.rootfs},upperdir={self.workdir / 'upper'},"
                 f"workdir={self.workdir / 'work'}", str(self.root)])
            self._make_netns()
            mirror_host = re.sub(r"^\w+://([^/:]+).*", r"\1", self.cache.info["mirror"])
            self.hosts = {mirror_host: MIRROR_IP, **self.standins.hosts(self.extra_hosts)}
            self.standins.start(self.hosts)
            self._prepare_root()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        errors: list[str] = []
        if self._nspawn is not None:
            with contextlib.suppress(Exception):
                self.power_off(timeout=30)
        self.standins.stop()
        if self._netns and (error := remove_netns(self.name)):
            errors.append(f"ip netns del {self.name}: {error}")
        self._netns = False
        try:
            umount_all(self.workdir)
        except RuntimeError as e:
            errors.append(str(e))
        if not errors and os.environ.get("STUN_INFRA_BOOT_KEEP") != "1" and not mounts_under(self.workdir):
            for d in ("upper", "work", "merged"):
                shutil.rmtree(self.workdir / d, ignore_errors=True)
        if errors:
            raise RuntimeError("sandbox teardown: " + "; ".join(errors))

    def _make_netns(self) -> None:
        if subprocess.run(["ip", "netns", "pids", self.name], capture_output=True).returncode == 0:
            raise RuntimeError(f"network namespace {self.name} already exists")
        run(["ip", "netns", "add", self.name])
        self._netns = True
        ns = ["ip", "-n", self.name]
        run([*ns, "link", "set", "lo", "up"])
        for addr in (IMDS_IP, MIRROR_IP, AWS_API_IP, DOWNLOADS_IP, CLIENT_IP):
            run([*ns, "addr", "add", f"{addr}/32", "dev", "lo"])
        # The instance's own interface: only its private address, as on EC2 (the public
        # address is 1:1 NAT outside the instance). A veth pair with both ends inside the
        # namespace: a link that is up, yet leads nowhere off the machine.
        run([*ns, "link", "add", "eth0", "address", self.instance.mac, "type", "veth", "peer", "name", "eth0-peer"])
        run([*ns, "addr", "add", f"{self.instance.private_ip}/{self.instance.prefix_len}", "dev", "eth0"])
        if self.instance.ipv6:  # an instance in a subnet with IPv6: its own address, not NATed
            run([*ns, "addr", "add", f"{self.instance.ipv6}/64", "dev", "eth0", "nodad"])
            run([*ns, "addr", "add", f"{CLIENT_IPV6}/128", "dev", "lo", "nodad"])
        run([*ns, "link", "set", "eth0-peer", "up"])
        run([*ns, "link", "set", "eth0", "up"])

    def chroot(self, *cmd: str) -> list[str]:
        """A command in the root while the machine is off (setting it up)."""
        return ["env", "-i", f"PATH={CHROOT_PATH}", "LANG=C.UTF-8", "chroot", str(self.root), *cmd]

    def _prepare_root(self) -> None:
        root = self.root
        with open(root / "etc/hosts", "a") as f:
            f.write("\n# stun-infra boot sandbox: stand-ins inside the test's network namespace\n")
            for name, ip in self.hosts.items():
                f.write(f"{ip} {name}\n")
        # No DNS server exists in the namespace: names resolve through /etc/hosts only.
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")
        shutil.copy(self.standins.pki["ca"], root / "usr/local/share/ca-certificates/stun-infra-sandbox-ca.crt")
        run(self.chroot("update-ca-certificates"))
        (root / "etc/cloud/cloud.cfg.d/90-stun-infra-sandbox.cfg").write_text(CLOUD_CFG)
        (root / "etc/systemd/system.conf.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/system.conf.d/stun-infra-sandbox.conf").write_text(SYSTEM_CONF)
        (root / "var/log/journal").mkdir(exist_ok=True)  # persistent: read after a power off too
        if self.arch != host_arch():
            self._host_nft()

    def _host_nft(self) -> None:
        """Under qemu-user the root's own nft cannot reach the kernel: qemu (7.2) does not
        translate NETLINK_NETFILTER sockets ("Unable to initialize Netlink socket: Protocol
        not supported"). The one deviation of an emulated root: /usr/sbin/nft is diverted
        (before the script installs nftables) to a shim running this machine's nft (the same
        Debian 12 nftables) with its own libraries."""
        host_nft = Path(shutil.which("nft") or "/usr/sbin/nft").resolve()
        dest = self.root / HOST_NFT_DIR.lstrip("/")
        dest.mkdir(parents=True)
        loader = ""
        for line in run(["ldd", str(host_nft)]).stdout.splitlines():
            m = re.search(r"(/\S+)", line)
            if m:
                lib = Path(m[1])
                shutil.copy(lib.resolve(), dest / lib.name)
                loader = lib.name if "ld-linux" in lib.name else loader
        shutil.copy(host_nft, dest / "nft")
        run(self.chroot("dpkg-divert", "--local", "--rename", "--add", "/usr/sbin/nft"))
        shim = self.root / "usr/sbin/nft"
        shim.write_text(f"#!/bin/sh\n# stun-infra boot sandbox: the host's nft (qemu-user has no NETLINK_NETFILTER)\n"
                        f"exec {HOST_NFT_DIR}/{loader} --library-path {HOST_NFT_DIR} {HOST_NFT_DIR}/nft \"$@\"\n")
        shim.chmod(0o755)

    # -- the user data and what it fetches -------------------------------------------------

    def user_data(self, settings, boot, *, publish: bool = True, fetch_seconds: int | None = None) -> str:  # noqa: ANN001
        """The user data `pulumi up` gives an instance with these boot inputs, the package it
        names published in the bucket stand-in (unless `publish` is false: a missing package)."""
        from stun_infra.instance import package
        from stun_infra.instance.userdata import render_user_data

        built = package.build(settings, boot)
        if publish:
            self.standins.publish_package(built.data, built.key)
        self.package = built
        return render_user_data(settings, self.bucket, built, boot.expected_public_ip,
                                **({"fetch_seconds": fetch_seconds} if fetch_seconds else {}))

    def launch_with(self, payload: str) -> None:
        """What the instance was launched with: the launch template's base64 user data, served
        by IMDS decoded, byte for byte, as EC2 does."""
        import base64

        self.standins.user_data_file.write_bytes(base64.b64decode(payload))

    # -- power -----------------------------------------------------------------------------

    def boot(self, user_data: str | None = None, *, timeout: float = 900) -> Boot:
        """Launch: IMDS serves `user_data` (as `userdata.packed` hands it to EC2), then power on
        and wait for cloud-init and systemd's start-up to finish."""
        from stun_infra.instance.userdata import packed

        if user_data is not None:
            self.launch_with(packed(user_data))
        self.standins.start_imds()  # this instance's document (its id: a new one is a new instance)
        return self.power_on(timeout=timeout)

    def power_on(self, *, timeout: float = 900) -> Boot:
        if self._nspawn is not None:
            raise RuntimeError("the machine is already on")
        output_log = self.root / "var/log/cloud-init-output.log"
        seen = output_log.stat().st_size if output_log.exists() else 0
        started = time.time()
        console = open(self.logs / "console.log", "a")
        self._nspawn = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", f"--machine={self.name}",
             f"--network-namespace-path=/run/netns/{self.name}", f"--directory={self.root}",
             # An instance's root manages its own network's firewall: nspawn grants
             # CAP_NET_ADMIN only with a network namespace it made itself.
             "--capability=CAP_NET_ADMIN",
             # As a VM's PID 1 (systemd raises its hard limit to the kernel's ceiling), not this
             # process's, so units' LimitNOFILE= apply as on EC2.
             f"--rlimit=RLIMIT_NOFILE=1024:{Path('/proc/sys/fs/nr_open').read_text().strip()}",
             "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=pipe"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        wait_until("systemd-nspawn starting the machine's PID 1", self._started, timeout)
        waited = self._wait_in(deadline, "cloud-init", "status", "--wait")
        stages = self._read_json("/run/cloud-init/status.json").get("v1", {})
        errors = [e for stage in stages.values() if isinstance(stage, dict) for e in stage.get("errors", [])]
        status = "timeout" if waited is None else "error" if errors else "done"
        # "timeout": start-up still going (a unit waiting to run again)
        system = (self._wait_in(deadline, "systemctl", "is-system-running", "--wait") or "timeout").strip()
        seconds = round(time.time() - started, 2)
        failed = self.exec("systemctl", "list-units", "--failed", "--plain", "--no-legend", check=False).stdout
        result = self._read_json("/run/cloud-init/result.json")
        text = output_log.read_bytes()[seen:].decode(errors="replace") if output_log.exists() else ""
        log_text = (self.root / "var/log/cloud-init.log").read_text(errors="replace")
        ran, script_seconds = self._script_events(started)
        m = _SCRIPT_EXIT.findall(log_text)
        returncode = int(m[-1]) if ran and m and status == "error" else 0
        failed_units = [line.split()[0] for line in failed.splitlines() if line.split()]
        emulation = [u for u in failed_units if u in EMULATION_FAILURES and self.arch != host_arch()]
        failed_units = [u for u in failed_units if u not in emulation]
        failures = "".join(self.journal(u) for u in failed_units)
        boot = Boot(status=status, errors=[str(e) for e in result.get("v1", {}).get("errors", [])],
                    system=system, failed_units=failed_units, failures=failures, emulation_failures=emulation,
                    output=text, script_ran=ran, returncode=returncode, seconds=seconds,
                    script_seconds=script_seconds, stages=stage_timings(text))
        return boot

    def _started(self) -> int | None:
        if self._nspawn.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited {self._nspawn.returncode}:\n"
                               f"{(self.logs / 'console.log').read_text()[-3000:]}")
        return self.leader()

    def _wait_in(self, deadline: float, *cmd: str) -> str | None:
        """What `cmd` (one that waits) printed inside the machine, given until `deadline`; None
        when it was still waiting."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.exec(*cmd, check=False, timeout=max(5.0, deadline - time.monotonic())).stdout
        return None

    def _read_json(self, path: str) -> dict:
        p = self.exec("cat", path, check=False)
        return json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {}

    def _script_events(self, since: float) -> tuple[bool, float]:
        """Whether cloud-init ran the user data (its scripts-user module) in the boot that began
        at `since`, and how long that took, from cloud-init's own log."""
        start = finish = None
        ran = False
        for line in (self.root / "var/log/cloud-init.log").read_text(errors="replace").splitlines():
            m = _EVENT.match(line)
            if not m or _log_time(m[1]) < since - 1:
                continue
            if m[2] == "start":
                start = _log_time(m[1])
            else:
                finish, ran = _log_time(m[1]), "previously ran" not in m[3]
        return ran, round(finish - start, 2) if start is not None and finish is not None else 0.0

    def power_off(self, *, timeout: float = 120, verb: str = "poweroff") -> int:
        """`systemctl poweroff` (or `verb`) in the machine: systemd stops every unit (ExecStop
        runs), then the container ends. Returns nspawn's exit status."""
        if self._nspawn is None:
            raise RuntimeError("the machine is off")
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.exec("systemctl", verb, check=False, timeout=30)
            return self._nspawn.wait(timeout=timeout)
        finally:
            stop_process(self._nspawn)
            self._nspawn = None
            # What a power cycle resets and the namespace (which outlives the machine, with its
            # stand-ins) would keep: the machine's nftables tables.
            run(self.ns("nft", "flush", "ruleset"))

    def start(self, public_ip: str | None = None, *, imds: bool = True, timeout: float = 900) -> Boot:
        """Power on a stopped instance: an EC2 start gives it a new public IPv4 (`public_ip`) in
        IMDS; `imds` false: the metadata service does not answer during this start."""
        if public_ip:
            self.instance.public_ip = public_ip
        if imds:
            self.standins.start_imds()
        else:
            self.standins.stop("imds")
        return self.power_on(timeout=timeout)

    def reboot(self, *, timeout: float = 900) -> Boot:
        """`systemctl reboot`: nspawn ends with 133 (a reboot), and the machine boots again."""
        rc = self.power_off(timeout=timeout, verb="reboot")
        if rc != 133:
            raise RuntimeError(f"systemd-nspawn exited {rc} on a reboot, not 133")
        return self.power_on(timeout=timeout)

    # -- inside the machine ------------------------------------------------------------------

    def leader(self) -> int | None:
        """The pid (on this host) of the machine's PID 1, once nspawn started it."""
        if self._nspawn is None:
            return None
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children").read_text().split():
                status = Path(f"/proc/{child}/status").read_text()
                if re.search(r"^NSpid:\s+\d+\s+1$", status, re.M) and "nspawn" not in Path(f"/proc/{child}/comm").read_text():
                    return int(child)
        return None

    def exec(self, *cmd: str, timeout: float = 120, check: bool = True, env: dict | None = None,
             user: str | None = None) -> subprocess.CompletedProcess:
        """Run `cmd` inside the running machine (all its namespaces), as root or `user`."""
        return run(self.command(*cmd, env=env, user=user), timeout=timeout, check=check)

    def command(self, *cmd: str, env: dict | None = None, user: str | None = None) -> list[str]:
        """The host command line that runs `cmd` inside the running machine (see exec)."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("the machine is not running")
        environment = {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", **(env or {})}
        wrap = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        return ["nsenter", f"--target={leader}", "--all", "env", "-i",
                *(f"{k}={v}" for k, v in environment.items()), *wrap, *cmd]

    def systemctl(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.exec("systemctl", *args, check=check, timeout=timeout)

    def journal(self, unit: str | None = None) -> str:
        """What the machine's journal holds (of `unit`), messages only, read from its disk: also
        after a power off."""
        cmd = ["journalctl", "-D", str(self.root / "var/log/journal"), "--no-pager", "-o", "cat"]
        return run([*cmd, *(["-u", unit] if unit else [])], check=False).stdout

    def unit_property(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "-p", prop, "--value", unit).stdout.strip()

    def unit_seconds(self, unit: str) -> float:
        """How long the last run of `unit`'s main process took, by systemd's own stamps."""
        start, end = (int(self.unit_property(unit, f"ExecMain{edge}TimestampMonotonic")) for edge in ("Start", "Exit"))
        return round((end - start) / 1e6, 2)

    # -- the namespace, from outside the machine ---------------------------------------------

    def ns(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def ns_python(self, code: str, *, timeout: float = 60) -> object:
        """Run `code` with this venv's Python inside the namespace (repo importable); it
        must print one JSON document, which is returned."""
        env = {"PATH": os.environ.get("PATH", CHROOT_PATH), "PYTHONPATH": f"{REPO}:{Path(__file__).parent}"}
        p = run(self.ns("env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-c", code),
                timeout=timeout)
        return json.loads(p.stdout)

    def stun_binding(self, server: str, port: int, *, client_ip: str = CLIENT_IP,
                     wait: float = 30.0) -> tuple[tuple[str, int], tuple[str, int]]:
        """(local, mapped) of a STUN binding from `client_ip` inside the namespace, retried
        for up to `wait` seconds while the server comes up. An IPv6 `server` is asked from
        CLIENT_IPV6 unless `client_ip` says otherwise."""
        if ":" in server and client_ip == CLIENT_IP:
            client_ip = CLIENT_IPV6
        out = self.ns_python(f"""
import asyncio, json, time
from stun_infra.client import turn_client as tc
async def main():
    deadline = time.monotonic() + {wait}
    while True:
        try:
            b = await tc.stun_binding(({server!r}, {port}), local_address=({client_ip!r}, 0), timeout=1.0)
            return [list(b.local_address[:2]), list(b.mapped_address[:2])]
        except (OSError, TimeoutError, asyncio.TimeoutError, tc.StunError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
print(json.dumps(asyncio.run(main())))
""", timeout=wait + 30)
        return tuple(out[0]), tuple(out[1])  # type: ignore[return-value]

    # -- what the stand-ins saw, and the disk ------------------------------------------------

    STANDINS = ("requests", "set_lifecycle_state", "www", "faults_file", "bucket_host", "agent_path",
                "publish_agents")

    def __getattr__(self, name: str):  # noqa: ANN204
        """What the stand-ins saw and serve (`STANDINS`), asked of the machine."""
        if name in self.STANDINS:
            return getattr(self.standins, name)
        raise AttributeError(name)

    def calls(self) -> list[str]:
        """What the stub agents were asked to do."""
        from standins import CALLS_LOG

        f = self.root / CALLS_LOG.lstrip("/")
        return f.read_text().splitlines() if f.exists() else []

    def manifest(self, exclude: Iterable[str]) -> dict[str, tuple]:
        """(type, mode, uid, gid, sha256 or link target) of every path the overlay holds
        changed since the pristine rootfs, read through the merged view."""
        import hashlib

        excluded = tuple(e.strip("/") for e in exclude)
        out: dict[str, tuple] = {}
        for changed in (self.workdir / "upper").rglob("*"):
            rel = str(changed.relative_to(self.workdir / "upper"))
            if any(rel == e or rel.startswith(e + "/") for e in excluded):
                continue
            path = self.root / rel
            if not path.is_symlink() and not path.exists():
                out[rel] = ("deleted",)
            elif path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            else:
                st, kind = path.stat(), "dir" if path.is_dir() else "file"
                digest = () if path.is_dir() else (hashlib.sha256(path.read_bytes()).hexdigest(),)
                out[rel] = (kind, oct(st.st_mode), st.st_uid, st.st_gid, *digest)
        return out


@contextlib.contextmanager
def seeded_sandbox(cache: RootfsCache, workdir: Path, settings, instance: Instance, *, tls: bool = True,
                   **boot_changes):  # noqa: ANN001
    """A sandbox for `settings` on `instance`, Parameter Store seeded (seeded_parameters): yields
    (sandbox, boot inputs with `boot_changes`, TURN secret)."""
    from stun_infra.instance.metrics import log_group_name
    from tests.support.signing import TestKey

    parameters, secret = seeded_parameters(settings, tls=tls)
    signer = TestKey(workdir / "signer")
    _, boot = sandbox_boot_inputs(settings, instance, signer, **boot_changes)
    with Sandbox(cache, workdir, instance=instance, parameters=parameters, signer=signer,
                 log_group=log_group_name(settings.project, settings.stack)) as box:
        yield box, boot, secret
