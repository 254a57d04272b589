"""The boot sandbox's root filesystem: Debian 12 as an AMI has it, cached per package set and
architecture, never modified after its build (machines run on an overlay of it).

`debootstrap --variant=minbase` of Debian 12 from the mirror apt is configured with (or
$STUN_INFRA_DEBIAN_MIRROR), plus what a Debian 12 AMI already has and the boot uses before
its own apt runs: systemd as init, python3 (the user data), curl, ca-certificates, and
cloud-init, which runs the user data. In the same build, on the host network, `apt-get
update` fills the package lists and `apt-get install --download-only` fetches every .deb
the script will install (served later by the mirror stand-in). Stored under
$STUN_INFRA_CACHE (default <repo>/.cache/boot), keyed by the package sets.

`python tests/boot/rootfs.py build-rootfs ARCH...` builds (or finds) the roots ahead of the
tests (.ci/run starts it in the background); the tests wait on the same per-cache lock.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
BUILD_VERSION = 1  # bump when the build procedure changes, to invalidate old caches
# What a Debian 12 AMI already has that matters here: systemd as init (it also decides what
# apt pulls in: logrotate wants a cron daemon unless systemd-sysv is there), python3 (the user
# data; cloud-init is written in it), curl and ca-certificates.
BASE_PACKAGES = ("ca-certificates", "curl", "iproute2", "procps", "python3", "systemd-sysv")
# Installed with apt after debootstrap (which cannot resolve their virtual dependencies), without
# recommends as Debian's cloud images do: what runs the user data on a Debian 12 AMI, and the
# automatic upgrades the AMI enables (debian-cloud-images' SYSTEM_BOOT class installs
# unattended-upgrades, whose debconf default writes 20auto-upgrades enabled).
AMI_PACKAGES = ("cloud-init", "unattended-upgrades")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"[boot-sandbox] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("STUN_INFRA_CACHE") or REPO / ".cache" / "boot")


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def run(cmd: list[str], *, timeout: float = 600, check: bool = True, env: dict | None = None,
        capture: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {shlex.join(cmd)}\n"
                           f"{(p.stdout or '')[-3000:]}\n{(p.stderr or '')[-3000:]}")
    return p


def debian_mirror() -> str:
    """$STUN_INFRA_DEBIAN_MIRROR, else the first apt source serving `bookworm` itself, as apt
    reads its sources."""
    if os.environ.get("STUN_INFRA_DEBIAN_MIRROR"):
        return os.environ["STUN_INFRA_DEBIAN_MIRROR"].rstrip("/")
    targets = run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"]).stdout.split("\n")
    for uri, suite in (line.split() for line in targets if line.strip()):
        if suite == SUITE and uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    raise RuntimeError(f"no apt source for {SUITE} in /etc/apt; set STUN_INFRA_DEBIAN_MIRROR")


# -- mounts ----------------------------------------------------------------------------

def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return found


def umount_all(path: Path) -> None:
    """Unmount everything at or under `path`, deepest first; lazily if busy."""
    for _ in range(5):
        targets = sorted(set(mounts_under(path)), key=len, reverse=True)
        if not targets:
            return
        for t in targets:
            if subprocess.run(["umount", t], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", t], capture_output=True)
    left = mounts_under(path)
    if left:
        raise RuntimeError(f"could not unmount {left}")


def mount_api_filesystems(root: Path) -> None:
    """/proc, /sys, a private /dev and /run, like a booted system (apt's maintainer scripts in the build)."""
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    run(["mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(root / "sys")])
    dev = root / "dev"
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "sandbox-dev", str(dev)])
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)):
        os.mknod(dev / name, 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    (dev / "pts").mkdir()
    (dev / "shm").mkdir(mode=0o1777)
    run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts", str(dev / "pts")])
    os.symlink("pts/ptmx", dev / "ptmx")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / name)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "sandbox-run", str(root / "run")])
    (root / "run" / "lock").mkdir()



# -- foreign architectures -------------------------------------------------------------

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Debian architecture -> qemu-user's name for it (qemu-user-static's /usr/lib/binfmt.d/*.conf).
QEMU_NAMES = {"arm64": "aarch64", "amd64": "x86_64"}


def ensure_binfmt(arch: str) -> None:
    """Let this kernel run `arch` binaries through qemu-user-static: mount binfmt_misc if
    it is not, and register the interpreter from qemu-user-static's binfmt.d line (its
    F flag opens the interpreter now, so it works inside a chroot). Idempotent."""
    name = QEMU_NAMES.get(arch, arch)
    conf = Path(f"/usr/lib/binfmt.d/qemu-{name}.conf")
    if not conf.is_file():
        raise RuntimeError(f"running {arch} binaries needs qemu-user-static ({conf} missing)")
    if not (BINFMT_DIR / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
    entry = BINFMT_DIR / f"qemu-{name}"
    if not entry.exists():
        with contextlib.suppress(FileExistsError):  # another process registered it meanwhile
            (BINFMT_DIR / "register").write_text(conf.read_text().strip() + "\n")
    if not entry.read_text().startswith("enabled"):
        raise RuntimeError(f"binfmt_misc entry {entry} is disabled")


# -- root filesystem cache -------------------------------------------------------------

@dataclass(frozen=True)
class RootfsCache:
    """One built cache: the root, the .debs and package lists the mirror stand-in serves."""

    dir: Path
    rootfs = property(lambda self: self.dir / "rootfs")
    debs = property(lambda self: self.dir / "debs")
    mirror = property(lambda self: self.dir / "mirror")
    info = property(lambda self: json.loads((self.dir / "build.json").read_text()))


def cache_key(packages: Iterable[str], arch: str) -> str:
    doc = json.dumps({"v": BUILD_VERSION, "suite": SUITE, "arch": arch, "base": sorted(BASE_PACKAGES),
                      "ami": sorted(AMI_PACKAGES), "packages": sorted(set(packages))}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def apt_list_to_path(filename: str, host: str) -> str | None:
    """apt's list file name (URItoFileName) back to the URL path, for lists of `host`."""
    prefix = host + "_"
    if not filename.startswith(prefix):
        return None
    return "/" + "/".join(urllib.parse.unquote(p) for p in filename[len(prefix):].split("_"))


def ensure_rootfs(packages: Iterable[str], arch: str | None = None) -> RootfsCache:
    """The cached rootfs for this package set and Debian architecture (default: this
    machine's), built now if missing (needs the mirror; a foreign one needs qemu-user)."""
    packages = sorted(set(packages))
    arch = arch or host_arch()
    if arch != host_arch():
        ensure_binfmt(arch)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{SUITE}-{arch}-{cache_key(packages, arch)}"
    with open(root / f".lock-{final.name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of a cache at a time per machine
        if (final / "build.json").is_file():
            (final / "last-used").touch()
            return RootfsCache(final)
        building = root / f".building-{final.name}"
        if building.exists():
            umount_all(building)
            shutil.rmtree(building)
        building.mkdir()
        try:
            _build(RootfsCache(building), packages, arch)
            building.rename(final)
            (final / "last-used").touch()
            _prune(root, keep=final)
        except BaseException:
            umount_all(building)
            raise
    return RootfsCache(final)


CACHE_MAX_IDLE_DAYS = 14


def _prune(root: Path, keep: Path) -> None:
    """Remove other package sets' caches unused for CACHE_MAX_IDLE_DAYS (none is mounted:
    runs mount an overlay elsewhere, with the cache only as its lower layer)."""
    for other in root.glob(f"{SUITE}-*"):
        stamp = other / "last-used"
        if other == keep or not stamp.exists() or mounts_under(other):
            continue
        if time.time() - stamp.stat().st_mtime > CACHE_MAX_IDLE_DAYS * 86400:
            log(f"removing cache {other.name}, unused for {CACHE_MAX_IDLE_DAYS} days")
            shutil.rmtree(other)


def _build(cache: RootfsCache, packages: list[str], arch: str) -> None:
    mirror = debian_mirror()
    rootfs = cache.rootfs
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    foreign = arch != host_arch()
    log(f"debootstrap {SUITE} ({arch}{', foreign' if foreign else ''}) from {mirror} into {rootfs} ...")
    run(["debootstrap", "--variant=minbase", f"--arch={arch}", f"--include={','.join(BASE_PACKAGES)}",
         *(["--foreign"] if foreign else []), SUITE, str(rootfs), mirror], timeout=1800)
    timings["debootstrap"] = round(time.monotonic() - t0, 1)
    if foreign:  # unpacked only: configure it with the target's own binaries, under qemu-user
        t_second = time.monotonic()
        run(["chroot", str(rootfs), "/debootstrap/debootstrap", "--second-stage"],
            env={"PATH": CHROOT_PATH, "LANG": "C.UTF-8"}, timeout=3600)
        timings["second_stage"] = round(time.monotonic() - t_second, 1)
    env = {"PATH": CHROOT_PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
    t1 = time.monotonic()
    mount_api_filesystems(rootfs)
    try:
        chroot = ["chroot", str(rootfs)]
        run([*chroot, "apt-get", "clean"], env=env)
        run([*chroot, "apt-get", "update", "-q"], env=env, timeout=900)
        run([*chroot, "apt-get", "install", "-y", "-q", "--no-install-recommends", *AMI_PACKAGES], env=env,
            timeout=1800)
        run([*chroot, "apt-get", "clean"], env=env)
        # With recommends: a superset of what the script installs, whatever its flags.
        run([*chroot, "apt-get", "install", "-y", "-q", "--download-only", *packages], env=env, timeout=1800)
    finally:
        umount_all(rootfs)
    archives = rootfs / "var/cache/apt/archives"
    cache.debs.mkdir()
    for deb in archives.glob("*.deb"):
        shutil.move(str(deb), cache.debs / deb.name)
    # The pool stand-in finds a .deb by the file name the mirror's Filename: field ends
    # with, which has no epoch; apt's archive names carry it encoded (%3a).
    for deb in list(cache.debs.glob("*%3a*.deb")):
        deb.rename(cache.debs / re.sub(r"_\d+%3a", "_", deb.name))
    run(["chroot", str(rootfs), "apt-get", "clean"], env=env)
    host = urllib.parse.urlsplit(mirror).netloc
    for f in (rootfs / "var/lib/apt/lists").iterdir():
        path = apt_list_to_path(f.name, host.replace(":", "%3a")) if f.is_file() else None
        if path:
            dest = cache.mirror / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    timings["download_debs"] = round(time.monotonic() - t1, 1)
    (cache.dir / "build.json").write_text(json.dumps({
        "suite": SUITE, "arch": arch, "mirror": mirror, "base": list(BASE_PACKAGES), "packages": packages,
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": timings, "debs": len(list(cache.debs.glob("*.deb"))),
    }, indent=2))
    log(f"rootfs built: {timings}")


def main(argv: list[str]) -> int:
    """`python tests/boot/rootfs.py build-rootfs ARCH...`: build (or find) the cached
    roots ahead of the tests, e.g. in the background while other tests run (.ci/run); the
    tests then wait on the same per-cache lock and use them."""
    if len(argv) < 2 or argv[0] != "build-rootfs":
        print("usage: rootfs.py build-rootfs ARCH...", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from stun_infra.instance.package import DEPENDS as PACKAGES

    for arch in argv[1:]:
        t0 = time.monotonic()
        cache = ensure_rootfs(PACKAGES, arch)
        log(f"{cache.dir.name} ready in {time.monotonic() - t0:.1f}s (built {cache.info['built']}: "
            f"{cache.info['seconds']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

