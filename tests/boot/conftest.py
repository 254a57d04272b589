"""Fixtures for the boot test: a cached Debian 12 rootfs, and one sandboxed instance that
cloud-init booted with the rendered user data, then rebooted.

Needs root, debootstrap, systemd-nspawn, `ip netns`, overlayfs and dpkg-deb. Without them
the tests skip, except under CI=true, where a missing requirement is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import boot_sandbox as sb
import rootfs
from tests.support.signing import TestKey

# Paths a boot may legitimately change every time: logs, caches, cloud-init's and systemd's
# state (timer stamps, the random seed), API filesystems.
VOLATILE = ("proc", "sys", "dev", "run", "tmp", "var/tmp", "var/log", "var/cache", "var/lib/apt/lists",
            "var/lib/cloud", "var/lib/systemd", "var/lib/private", "etc/machine-id", "root/.cache",
            "root/.aws/cli/cache",
            # what the timers rewrite: the metrics reporter's last reading (its state directory, a
            # link to var/lib/private made at its first run), logrotate's state
            "var/lib/stun-metrics", "var/lib/logrotate")

STAGE_REPORT: list[str] = []


def _unavailable(message: str) -> None:
    """Skip: the machine lacks what the sandbox needs; under CI=true, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _boot_requirements():
    missing = [tool for tool in ("debootstrap", "ip", "dpkg-deb", "nsenter", "chroot", "mount", "systemd-nspawn")
               if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("ip") and subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        missing.append("ip netns")
    if "overlay" not in Path("/proc/filesystems").read_text():
        missing.append("overlayfs")
    if missing:
        _unavailable("boot sandbox needs: " + ", ".join(missing))


def pytest_collection_modifyitems(items):
    """Boot tests last: on a fresh machine their roots are built meanwhile (.ci/run)."""
    items.sort(key=lambda item: item.get_closest_marker("boot") is not None)


def pytest_terminal_summary(terminalreporter):
    report = os.environ.get("STUN_INFRA_BOOT_REPORT")
    if report and TIMINGS:
        Path(report).write_text(json.dumps(TIMINGS, indent=2) + "\n")
    if STAGE_REPORT:
        terminalreporter.section("boot script timings")
        for line in STAGE_REPORT:
            terminalreporter.write_line(line)


@dataclass
class Booted:
    sandbox: sb.Sandbox
    settings: object
    user_data: str
    parameters: dict[str, str]
    parameter_names: object
    first: sb.Boot  # the launch: cloud-init runs the user data
    second: sb.Boot  # a reboot: the user data does not run again, configure's unit does
    manifest_first: dict
    manifest_second: dict
    conf_after_first: str
    imds_requests_during_script: list[dict] = field(default_factory=list)
    mirror_requests_during_second: list[dict] = field(default_factory=list)
    rendered_conf: str = ""  # `stun-infra render` for the same stack, addresses and secret

    def conf(self) -> str:
        return (self.sandbox.root / "etc/turnserver.conf").read_text()


TIMINGS: dict[str, object] = {}


def report_boot(label: str, r: sb.Boot) -> None:
    TIMINGS[label] = {"status": r.status, "returncode": r.returncode, "seconds": r.seconds,
                      "script_seconds": r.script_seconds, "stages": r.stages}
    STAGE_REPORT.append(f"{label}: cloud-init {r.status}, system {r.system}, power-on to done {r.seconds:.1f}s, "
                        f"user data {r.script_seconds:.1f}s")
    for name, seconds in r.stages.items():
        STAGE_REPORT.append(f"  {name:<26} {seconds:7.2f}s")
    for line in STAGE_REPORT[-(len(r.stages) + 1):]:
        print(line)


@pytest.fixture(scope="session")
def rootfs_cache(_boot_requirements):
    """rootfs_cache(arch): the cached Debian 12 root for a Debian architecture, built once
    per machine (a foreign one through qemu-user; without qemu-user-static it skips, and
    fails under CI=true)."""
    from stun_infra.instance.package import DEPENDS as PACKAGES

    caches: dict[str, rootfs.RootfsCache] = {}

    def get(arch: str) -> rootfs.RootfsCache:
        if arch not in caches:
            if arch != rootfs.host_arch() and not Path(f"/usr/lib/binfmt.d/qemu-{rootfs.QEMU_NAMES[arch]}.conf").is_file():
                _unavailable(f"an {arch} boot needs qemu-user-static")
            t0 = time.monotonic()
            cache = caches[arch] = rootfs.ensure_rootfs(PACKAGES, arch)
            info = cache.info
            took = time.monotonic() - t0
            TIMINGS[f"rootfs-{arch}"] = {"cache": cache.dir.name, "ready_seconds": round(took, 1),
                                         "build": info["seconds"]}
            STAGE_REPORT.append(f"rootfs cache {cache.dir.name}: ready in {took:.1f}s "
                                f"(built {info['built']}: {info['seconds']})")
            print(STAGE_REPORT[-1])
        return caches[arch]

    return get


# The stacks booted: (id, stack file, overrides, the instance's IPv6 address or ""). The
# sandbox runs the architecture of the stack's instance type: the default dev stack as it is
# (t4g, Graviton: arm64 under qemu-user) and with an x86 type, and the autoscale STUN-only
# stack on x86. One instance has an IPv6 address in IMDS; the others get IMDS's 404, as on
# a stack with ipv6 false (no IPv6 address on the instance).
STACKS = [
    ("dev-arm64-ipv6", "dev", {}, "2001:db8:42:1::23"),
    ("dev-x86_64", "dev", {"instanceType": "t3.small"}, ""),
    # Autoscale with an IPv6 address: it registers itself in the load balancer's IPv6 groups.
    ("prod-autoscale-stun-only-x86_64", "prod", {"instanceType": "c7i.large", "turn": "false"}, "2001:db8:42:2::23"),
]


@pytest.fixture(scope="module", params=STACKS, ids=[s[0] for s in STACKS])
def booted(request, rootfs_cache, tmp_path_factory):
    """One instance of a stack, booted by the user-data `stun-infra render` writes."""
    from stun_infra.cloud.offline import stack_settings
    from stun_infra.instance.metrics import log_group_name
    from stun_infra.commands.render import DEFAULT_BUCKET, PACKAGE_FILE
    from stun_infra.instance import package
    from stun_infra.instance.boot_inputs import ParameterNames
    from stun_infra.instance.userdata import render_user_data

    label, stack, overrides, ipv6 = request.param
    settings = stack_settings(stack, overrides)
    instance = sb.Instance.of(settings, ipv6=ipv6)
    cache = rootfs_cache(sb.DEBIAN_ARCH[settings.architecture])
    names = ParameterNames.under(settings.ssm_path, settings.turn)
    parameters, secret = sb.seeded_parameters(settings)

    workdir = tmp_path_factory.mktemp("boot")
    rendered = workdir / "render"
    cli = Path(sys.executable).with_name("stun-infra")
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    # Parameters are seeded once (version 1); the script reads them pinned, as a deployed stack does.
    sb.run([str(cli), "render", "--stack", stack, *sets, "--instance-paths", "--parameter-version", "1",
            "--out", str(rendered),
            "--public-ip", instance.public_ip, "--private-ip", instance.private_ip,
            *(["--ipv6", ipv6] if ipv6 else []),
            *(a for g in sb.ipv6_target_groups(settings) for a in ("--ipv6-target-group", f"{g.arn}={g.port}"))],
           env={**os.environ, "STUN_INFRA_TURN_SECRET": secret})
    signer = TestKey(workdir / "signer")
    production, boot = sb.sandbox_boot_inputs(settings, instance, signer)
    production_package = package.build(settings, production)
    assert (rendered / PACKAGE_FILE).read_bytes() == production_package.data
    assert (rendered / "user-data.py").read_text() == render_user_data(
        settings, DEFAULT_BUCKET, production_package, production.expected_public_ip)

    with sb.Sandbox(cache, workdir, instance=instance, parameters=parameters, signer=signer,
                    log_group=log_group_name(settings.project, settings.stack)) as box:
        user_data = box.user_data(settings, boot)
        STAGE_REPORT.append(f"[{label}] user data {len(user_data.encode())} bytes, package {len(box.package.data)} bytes")
        first = box.boot(user_data)
        report_boot(f"[{label}] launch", first)
        imds_during = box.requests("imds")
        manifest_first = box.manifest(VOLATILE)
        mirror_requests_first = len(box.requests("mirror"))
        ok = first.status == "done"
        conf_after_first = (box.root / "etc/turnserver.conf").read_text() if ok else ""
        second = box.reboot() if ok else first
        report_boot(f"[{label}] reboot", second)
        yield Booted(box, settings, user_data, parameters, names, first, second, manifest_first,
                     box.manifest(VOLATILE), conf_after_first, imds_during, box.requests("mirror")[mirror_requests_first:],
                     (rendered / "turnserver.conf").read_text())
