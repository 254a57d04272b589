"""The instance package: everything of ours that runs on an instance, as one Debian package
built here, byte for byte the same from the same inputs on any machine.

Written in Python (ar and tar, no dpkg-deb): every member has owner root, a fixed mtime and
mode, members sorted by path, and the tarballs are not compressed (compressors' output
differs between zlib builds; the package is a few hundred KB). dpkg installs it, owns its
files, and pulls Debian's packages the instance needs through `Depends`. It is per stack:
the values known at `pulumi up` are rendered in, so the stack's bucket holds exactly what
its instances run, named by its SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from dataclasses import dataclass

from stun_infra.instance.boot_inputs import BootInputs
from stun_infra.instance import metrics
from stun_infra.instance.metrics import log_group_name
from stun_infra.instance.stage import UNIT_DIR, InstanceFile
from stun_infra.instance.stages import stages
from stun_infra.instance.services import CONFIGURE_UNIT, CONFIGURED
from stun_infra.instance.nlb_targets import UNIT as NLB_TARGETS_UNIT
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

NAME = "stun-infra-instance"
UPSTREAM_VERSION = "1"
# Debian's packages the instance runs: coturn and the tools our programs call.
DEPENDS = ("coturn", "awscli", "nftables", "curl", "ca-certificates", "logrotate", "python3")
CONFIGURE_PATH = "/usr/sbin/stun-infra-configure"
BOOT_LOG = "/var/log/stun-infra-boot.log"
CONFIGURE_TIMEOUT_SECONDS = 1800  # the first start downloads the agents (DOWNLOAD_SECONDS each, at most)
# A failed configure (something transient was late: a parameter, the Elastic IP, a download)
# is run again by systemd, CONFIGURE_ATTEMPTS runs in all, CONFIGURE_RESTART_SECONDS apart; a
# boot stopped for good (BOOT_STOPPED_STATUS: a signature that does not verify) is not. Then
# BOOT_FAILED_UNIT publishes metrics.BOOT_FAILED, which the stack alarms on.
CONFIGURE_ATTEMPTS = 5
CONFIGURE_RESTART_SECONDS = 60
BOOT_STOPPED_STATUS = 3
BOOT_FAILED_UNIT = "stun-boot-failed.service"
BOOT_FAILED_SCRIPT = "/usr/local/sbin/stun-boot-failed"
MTIME = 1_700_000_000  # every member's time: a constant, so the bytes do not depend on when
MAINTAINER = "stun-infra <stun-infra@localhost>"


@dataclass(frozen=True)
class Package:
    data: bytes
    version: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def key(self) -> str:
        """Its object key in the stack's bucket: its digest."""
        return self.sha256


def configure_script(settings: Settings, boot: BootInputs) -> str:
    """stun-infra-configure: every stage of this stack, in order."""
    return render("stun-infra-configure.sh.j2", settings=settings, stages=stages(settings, boot), package=NAME,
                  unit=CONFIGURE_UNIT, configured=CONFIGURED, log=BOOT_LOG, stopped_status=BOOT_STOPPED_STATUS,
                  failed_unit=BOOT_FAILED_UNIT,
                  log_group=log_group_name(settings.project, settings.stack))


def configure_units(boot: BootInputs) -> dict[str, str]:
    """configure's unit (run again by systemd when it fails) and the unit that reports it gave up."""
    return {
        CONFIGURE_UNIT: render(
            "stun-infra-configure.service.j2", configure_path=CONFIGURE_PATH, timeout_seconds=CONFIGURE_TIMEOUT_SECONDS,
            before=[NLB_TARGETS_UNIT] if boot.ipv6_target_groups else [], attempts=CONFIGURE_ATTEMPTS,
            restart_seconds=CONFIGURE_RESTART_SECONDS, stopped_status=BOOT_STOPPED_STATUS,
            failed_unit=BOOT_FAILED_UNIT,
            # every run and every pause fit in it, so the limit is reached: systemd gives up
            limit_interval=CONFIGURE_ATTEMPTS * (CONFIGURE_TIMEOUT_SECONDS + CONFIGURE_RESTART_SECONDS) + 60),
        BOOT_FAILED_UNIT: render("stun-boot-failed.service.j2", unit=CONFIGURE_UNIT, script_path=BOOT_FAILED_SCRIPT),
    }


def boot_failed_script(settings: Settings) -> str:
    return render("stun-boot-failed.sh.j2", unit=CONFIGURE_UNIT, metric=metrics.BOOT_FAILED,
                  dimension=metrics.INSTANCE_DIMENSION, namespace=metrics.namespace(settings.stack))


def instance_files(settings: Settings, boot: BootInputs) -> tuple[InstanceFile, ...]:
    """Every file the package installs: configure, its unit, and each stage's files and units."""
    files = [InstanceFile(CONFIGURE_PATH, configure_script(settings, boot), 0o755),
             *(InstanceFile(f"{UNIT_DIR}/{name}", text) for name, text in configure_units(boot).items()),
             InstanceFile(BOOT_FAILED_SCRIPT, boot_failed_script(settings), 0o755)]
    for stage in stages(settings, boot):
        files += stage.shipped()
    paths = [f.path for f in files]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ValueError(f"two stages ship the same path: {repeated}")
    return tuple(sorted(files, key=lambda f: f.path))


def _tar(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """An uncompressed tar of (path, content or None for a directory, mode), in that order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, content, mode in entries:
            info = tarfile.TarInfo("./" + path.lstrip("/") if path != "/" else "./")
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = mode, MTIME, 0, 0, "root", "root"
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _data_tar(files: tuple[InstanceFile, ...]) -> bytes:
    dirs = sorted({d for f in files for d in _parents(f.path)})
    return _tar([("/", None, 0o755), *((d, None, 0o755) for d in dirs),
                 *((f.path, f.text.encode(), f.mode) for f in files)])


def _parents(path: str) -> list[str]:
    out, d = [], posixpath.dirname(path)
    while d != "/":
        out.append(d)
        d = posixpath.dirname(d)
    return out


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    """A System V ar archive, as dpkg reads .debs (deb(5))."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        assert len(header) == 60
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def build(settings: Settings, boot: BootInputs) -> Package:
    """The package for this stack and these inputs (the Elastic IP is not one: it is per instance)."""
    files = instance_files(settings, boot)
    data = _data_tar(files)
    version = f"{UPSTREAM_VERSION}+{hashlib.sha256(data).hexdigest()[:16]}"
    control = (f"Package: {NAME}\nVersion: {version}\nArchitecture: all\nMaintainer: {MAINTAINER}\n"
               f"Depends: {', '.join(DEPENDS)}\nSection: net\nPriority: optional\n"
               f"Description: stun-infra: what runs on an instance of stack {settings.stack}\n"
               " coturn's configuration, the boot stages and the programs and units they install.\n")
    md5sums = "".join(f"{hashlib.md5(f.text.encode()).hexdigest()}  {f.path.lstrip('/')}\n" for f in files)
    control_tar = _tar([("/", None, 0o755), ("control", control.encode(), 0o644), ("md5sums", md5sums.encode(), 0o644)])
    return Package(_ar([("debian-binary", b"2.0\n"), ("control.tar", control_tar), ("data.tar", data)]), version)
