"""A throwaway EC2-like instance on this machine, for running the user data and the instance package for real.

Pieces (each is torn down by the one who made it, always):

- Root filesystem cache (`ensure_rootfs`): `debootstrap --variant=minbase` of Debian 12
  from the mirror apt is configured with (or $STUN_INFRA_DEBIAN_MIRROR), plus the few
  packages a Debian 12 AMI already has and the boot uses before apt runs (python3 for
  the user data, curl, ca-certificates). In the same build, on the host network, `apt-get update` fills the
  package lists and `apt-get install --download-only` fetches every .deb the script
  will install. Stored under $STUN_INFRA_CACHE (default <repo>/.cache/boot), keyed by
  the package sets, and never modified afterwards.
- `Sandbox`: an overlay on the cached rootfs (so the cache stays pristine), a network
  namespace with no route off the machine, and stand-ins inside it:
    169.254.169.254:80   IMDSv2 (boot_standins.py imds)
    192.0.2.10:80        the Debian mirror (its host name maps here in the chroot's
                         /etc/hosts): the package lists captured at build time and the
                         downloaded .debs, so `apt-get update/install` run unchanged
    192.0.2.20:443       AWS Systems Manager and CloudWatch, moto behind TLS
                         (ssm.<region>.amazonaws.com, monitoring.<region>.amazonaws.com)
    192.0.2.30:80,443    the CloudWatch agent and SSM agent download hosts, serving
                         stub .debs built by the test, and the stack's package bucket
                         (<bucket>.s3.<region>.amazonaws.com: SigV4 checked, as S3 does)
  TLS uses a CA made per run and added to the chroot's trust store, so the script's
  production URLs stay untouched. Only the init system is stubbed: `systemctl` and
  policy-rc.d (apt's postinst scripts start nothing), both recording their calls.
- `run_script`: runs the user-data as cloud-init would (root, executable, minimal env)
  in the chroot inside the namespace, timestamping each output line to time the
  `stun-infra: stage NAME begin/end` markers (the script's own figure when the end
  line gives one). `stop_and_start` stops what started as at boot, gives IMDS a new
  public IPv4, and starts the enabled units again (stun-infra-configure first).
- `start_unit`: starts a service the way its systemd unit (plus drop-ins) says:
  ExecStart, User/Group, LimitNOFILE, Environment(File), PrivateTmp, Inaccessible*,
  ProtectSystem/ProtectHome/ReadWritePaths, CapabilityBoundingSet (with the script's
  one deviation, AWS_CA_BUNDLE, so the AWS CLI trusts the sandbox CA).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import resource
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from stun_infra.settings import DEBIAN_ARCH  # settings.architecture -> dpkg's name

if TYPE_CHECKING:  # imported where used: this module is also imported inside the namespace
    from stun_infra.instance.downloads import AgentPackage
    from tests.support.signing import TestKey

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().with_name("boot_standins.py")
SUITE = "bookworm"
BUILD_VERSION = 1  # bump when the build procedure changes, to invalidate old caches
# What a Debian 12 AMI already has that matters here: what the script needs before its own
# apt-get runs, and systemd (which decides what apt pulls in: logrotate wants a cron
# daemon unless systemd-sysv is there). systemctl itself is stubbed per run.
# What the AMI has before the user data runs: Debian 12's cloud images carry python3 (cloud-init
# is written in it), curl and ca-certificates.
BASE_PACKAGES = ("ca-certificates", "curl", "iproute2", "procps", "python3", "systemd-sysv")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CALLS_LOG = "/var/log/stun-infra-sandbox/calls.log"
HOST_NFT_DIR = "/usr/local/lib/stun-infra-sandbox/host-nft"  # emulated roots only: see Sandbox._host_nft
# The system trust store, which holds the sandbox CA: Debian's awscli trusts only its
# bundled cacert.pem unless told otherwise (the script and the services get this).
SANDBOX_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# Addresses inside the namespace (documentation / link-local ranges only).
IMDS_IP = "169.254.169.254"
MIRROR_IP = "192.0.2.10"
AWS_API_IP = "192.0.2.20"
DOWNLOADS_IP = "192.0.2.30"
SANDBOX_BUCKET = "stun-infra-sandbox0000000000000000000"  # as long as the stack's (artifact.BUCKET_NAME_LENGTH)
MOTO_PLAIN_PORT = 4566  # moto's plain-HTTP listener on the namespace's loopback (seeding, reading back)
CLIENT_IP = "198.51.100.7"
CLIENT_IPV6 = "2001:db8:ffff::7"  # a STUN client over IPv6, for instances given an IPv6 address


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


# -- the Debian mirror apt is configured with -----------------------------------------

def parse_apt_sources(files: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled `deb` source, one-line and deb822 formats."""
    out: list[tuple[str, list[str]]] = []
    for name, text in files.items():
        if name.endswith(".list"):
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb":
                    out.append((parts[1], [parts[2]]))
        elif name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[0].isspace():
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" in fields.get("types", "").split():
                    for uri in fields.get("uris", "").split():
                        out.append((uri, fields.get("suites", "").split()))
    return out


def debian_mirror() -> str:
    """$STUN_INFRA_DEBIAN_MIRROR, else the first apt source serving `bookworm` itself."""
    if os.environ.get("STUN_INFRA_DEBIAN_MIRROR"):
        return os.environ["STUN_INFRA_DEBIAN_MIRROR"].rstrip("/")
    files: dict[str, str] = {}
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.is_file() and p.name.endswith((".list", ".sources")):
            files[p.name] = p.read_text(errors="replace")
    for uri, suites in parse_apt_sources(files):
        if SUITE in suites and uri.startswith(("http://", "https://")):
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


def mount_api_filesystems(root: Path, netns: str | None = None) -> None:
    """/proc, /sys (seen from `netns`), a private /dev and /run, like a booted system."""
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    sysfs = ["mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(root / "sys")]
    run(["nsenter", f"--net=/run/netns/{netns}", *sysfs] if netns else sysfs)
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


OVERLAY_SOURCE = "stun-infra-boot"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Undo what a killed earlier run (its pid is gone) left: its namespace, the
    processes in it, its overlay and the mounts inside. Touches only names this module
    makes (`stun-infra-boot-<pid>`)."""
    done = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in re.findall(rf"^({OVERLAY_SOURCE}-(\d+))\b", listing, re.M):
        ns, pid = name[0], int(name[1])
        if _alive(pid):
            continue
        for p in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        done.append(f"netns {ns}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, source = post.split()[:2]
        m = re.fullmatch(rf"{OVERLAY_SOURCE}-(\d+)", source)
        if fstype == "overlay" and m and not _alive(int(m[1])):
            target = Path(pre.split()[4].replace("\\040", " "))
            umount_all(target)
            done.append(f"mount {target}")
    for item in done:
        log(f"cleaned up after a killed run: {item}")
    return done


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
    dir: Path

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def debs(self) -> Path:
        return self.dir / "debs"

    @property
    def mirror(self) -> Path:
        return self.dir / "mirror"

    @property
    def info(self) -> dict:
        return json.loads((self.dir / "build.json").read_text())


def cache_key(packages: Iterable[str], arch: str) -> str:
    doc = json.dumps({"v": BUILD_VERSION, "suite": SUITE, "arch": arch, "base": sorted(BASE_PACKAGES),
                      "packages": sorted(set(packages))}, sort_keys=True)
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
    """(certificate PEM, private key PEM) for the TLS parameters."""
    from stun_infra.common import certificates

    key = certificates.new_key()
    cert = certificates.make_certificate([common_name], key, valid_from=datetime.timedelta(hours=-1),
                                         valid_for=datetime.timedelta(days=2, hours=1))
    return certificates.certificate_pem(cert).strip(), certificates.key_pem(key).strip()


# -- stub packages ---------------------------------------------------------------------

RECORDER = f"""#!/bin/sh
# stun-infra boot sandbox stub: records its call, does nothing else.
mkdir -p {os.path.dirname(CALLS_LOG)}
{{ printf '%s' "${{0##*/}}"; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'; }} >> {CALLS_LOG}
exit 0
"""


# [Install] settings `systemctl enable` acts on (systemd.unit(5)); DefaultInstance= of
# template units is not modelled (the script enables none).
INSTALL_SETTINGS = ("WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also")
# systemd 252's notice when `systemctl enable` is given only units without install info.
NO_INSTALL_NOTICE = """\
The unit files have no installation config (WantedBy=, RequiredBy=, Also=,
Alias= settings in the [Install] section, and DefaultInstance= for template
units). This means they are not meant to be enabled using systemctl."""

SYSTEMCTL = f"""#!/bin/sh
# stun-infra boot sandbox: systemctl without systemd. Records the call; like the real one,
# refuses to act on a unit that has no unit file, and `enable` on units none of which has
# install info ([Install] WantedBy= etc.) does nothing but print a notice. Starts nothing.
mkdir -p {os.path.dirname(CALLS_LOG)}
{{ printf 'systemctl'; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'; }} >> {CALLS_LOG}
verb=""; units=""; skip=""; installable=""; quiet=""
for a in "$@"; do
  if [ -n "$skip" ]; then skip=""; continue; fi
  case "$a" in
    -s|--signal|-t|--type|-p|--property|--kill-whom|-H|-M|-n|--lines|-o|--output) skip=1 ;;
    -q|--quiet) quiet=1 ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb="$a"; else units="$units $a"; fi ;;
  esac
done
case "$verb" in
  enable|disable|start|stop|restart|reload|try-restart|reload-or-restart|kill|reenable)
    for u in $units; do
      case "$u" in *.*) ;; *) u="$u.service" ;; esac
      file="$u"
      case "$u" in *@?*.*) file="${{u%%@*}}@.${{u##*.}}" ;; esac
      path=""
      for d in /etc/systemd/system /run/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
        [ -z "$path" ] && [ -e "$d/$file" ] && path="$d/$file"
      done
      if [ -z "$path" ]; then
        echo "Failed to $verb $u: Unit $u not found." >&2
        exit 5
      fi
      # Install info (what `enable` links; enabled_units reads the same): the [Install]
      # section of the unit file then of its drop-ins (name order, earlier directories win);
      # a setting is set when its last assignment is not empty (an empty one resets it).
      dropins=$(for d in /etc/systemd/system /run/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
        for f in "$d/$file.d/"*.conf; do [ -f "$f" ] && printf '%s %s\\n' "${{f##*/}}" "$f"; done
      done | sort -s -u -k1,1 | cut -d' ' -f2-)
      for key in {" ".join(INSTALL_SETTINGS)}; do
        for f in "$path" $dropins; do sed -n '/^[[:space:]]*\\[Install\\]/,/^[[:space:]]*\\[/p' "$f"; done \\
          | grep -E "^[[:space:]]*$key[[:space:]]*=" | tail -n 1 | grep -Eq '=[[:space:]]*[^[:space:]]' && installable=1
      done
    done
    # Like systemctl: a no-op with this notice (unless --quiet) when none of the units has
    # install info.
    case "$verb" in enable|reenable) [ -n "$installable$quiet" ] || cat >&2 <<'NOTICE'
{NO_INSTALL_NOTICE}
NOTICE
    esac ;;
esac
exit 0
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
    }, postinst="#!/bin/sh\nset -e\ngetent group cwagent >/dev/null || groupadd -r cwagent\n"
                "getent passwd cwagent >/dev/null || useradd -r -g cwagent -d /home/cwagent -s /bin/false cwagent\n")


def ssm_agent_deb(out_dir: Path, arch: str) -> Path:
    from tests.support.signing import build_deb
    return build_deb(out_dir, "amazon-ssm-agent", arch, {
        "/usr/bin/amazon-ssm-agent": RECORDER,
        "/lib/systemd/system/amazon-ssm-agent.service":
            "[Unit]\nDescription=amazon-ssm-agent (sandbox stub)\n[Service]\n"
            "ExecStart=/usr/bin/amazon-ssm-agent\n[Install]\nWantedBy=multi-user.target\n",
    })


# -- systemd units ---------------------------------------------------------------------

def read_unit(root: Path, unit: str, section: str = "Service") -> dict[str, list[str]]:
    """[Service] (or another section's) settings of `unit` as systemd would see them: the
    unit file (first of /etc, /run, /lib search paths) then its drop-ins in name order; an
    empty assignment resets a list setting."""
    dirs = ["etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"]
    main = next((root / d / unit for d in dirs if (root / d / unit).is_file()), None)
    if main is None:
        raise FileNotFoundError(f"no unit file for {unit} in {root}")
    drop_ins: dict[str, Path] = {}
    for d in reversed(dirs):  # earlier directories override same-named drop-ins
        for f in sorted((root / d / f"{unit}.d").glob("*.conf")):
            drop_ins[f.name] = f
    service: dict[str, list[str]] = {}
    for f in [main, *(drop_ins[n] for n in sorted(drop_ins))]:
        current = ""
        for raw in f.read_text().splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = line.strip("[]")
                continue
            if current != section or "=" not in line:
                continue
            k, v = (s.strip() for s in line.split("=", 1))
            if v == "":
                service[k] = []
            else:
                service.setdefault(k, []).append(v)
    return service


def install_info(root: Path, unit: str) -> dict[str, list[str]]:
    """The [Install] settings of `unit` that `systemctl enable` acts on (INSTALL_SETTINGS),
    read as systemctl reads them: the unit file, then its drop-ins (read_unit). An empty
    assignment resets a setting; settings left empty are left out."""
    install = read_unit(root, unit, "Install")
    found = {k: [w for v in install.get(k, []) for w in v.split()] for k in INSTALL_SETTINGS}
    return {k: v for k, v in found.items() if v}


def enable_requests(calls: Iterable[str]) -> list[str]:
    """The units named in `systemctl enable` calls of a calls log, in order, with suffixes."""
    out: list[str] = []
    for call in calls:
        words = call.split()
        if words[:2] == ["systemctl", "enable"]:
            for u in words[2:]:
                u = u if "." in u else u + ".service"
                if not u.startswith("-") and u not in out:
                    out.append(u)
    return out


def enabled_units(root: Path, calls: Iterable[str]) -> list[str]:
    """What those calls enabled, as systemd would: the units `enable` links (WantedBy=,
    RequiredBy=, UpheldBy=, Alias=). A unit without install info is never enabled
    (`enable` leaves it alone); Also= enables the units it names, not the unit itself."""
    out: list[str] = []
    seen: set[str] = set()

    def enable(unit: str) -> None:
        if unit in seen:
            return
        seen.add(unit)
        info = install_info(root, unit)
        if any(k != "Also" for k in info):
            out.append(unit)
        for also in info.get("Also", []):
            enable(also if "." in also else also + ".service")

    for unit in enable_requests(calls):
        enable(unit)
    return out


# Settings start_unit applies, and those it knowingly leaves to a real systemd.
UNIT_APPLIED = {"ExecStart", "User", "Group", "LimitNOFILE", "Environment", "EnvironmentFile",
                "PrivateTmp", "InaccessibleDirectories", "InaccessiblePaths", "NoNewPrivileges",
                "WorkingDirectory", "Type", "CapabilityBoundingSet", "AmbientCapabilities",
                "ProtectSystem", "ProtectHome", "ReadWritePaths", "ReadOnlyPaths"}


def _yes(value: str) -> bool:
    return value.lower() in ("yes", "true", "1", "on")


def _sandboxing_mounts(root: Path, svc: dict[str, list[str]]) -> list[str]:
    """Shell commands making the unit's file-system view (systemd.exec(5)), run in the
    private mount namespace `ip netns exec` gives the service."""
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    paths = lambda key: [p for v in svc.get(key, []) for p in v.split()]  # noqa: E731
    cmds: list[str] = []
    # Writable exceptions first: a self bind makes each its own mount, which the
    # read-only remounts below leave alone.
    for p in paths("ReadWritePaths"):
        target = root / p.lstrip("-/")
        if target.exists():
            cmds.append(f"mount --bind {q(target)} {q(target)}")
        elif not p.startswith("-"):
            cmds.append(f"echo 'ReadWritePaths: {p} missing' >&2 && false")
    protect = svc.get("ProtectSystem", ["no"])[-1].lower()
    if protect == "strict":
        cmds += [f"mount --rbind {q(root)} {q(root)}", f"mount -o remount,bind,ro {q(root)}",
                 f"mount -o remount,bind,ro {q(root / 'run')}"]
    elif protect in ("yes", "true", "1", "on", "full"):
        for d in ("usr", "boot", "efi", *(("etc",) if protect == "full" else ())):
            target = root / d
            if target.is_dir() and not target.is_symlink():
                cmds += [f"mount --bind {q(target)} {q(target)}", f"mount -o remount,bind,ro {q(target)}"]
    home = svc.get("ProtectHome", ["no"])[-1].lower()
    for d in ("home", "root", "run/user"):
        target = root / d
        if not target.is_dir():
            continue
        if home in ("yes", "true", "1", "on"):
            cmds.append(f"mount -t tmpfs -o ro,mode=000,nosuid,nodev,noexec tmpfs {q(target)}")
        elif home == "read-only":
            cmds += [f"mount --bind {q(target)} {q(target)}", f"mount -o remount,bind,ro {q(target)}"]
        elif home == "tmpfs":
            cmds.append(f"mount -t tmpfs -o ro,mode=755,nosuid,nodev tmpfs {q(target)}")
    for p in paths("ReadOnlyPaths"):
        target = root / p.lstrip("-/")
        if target.exists():
            cmds += [f"mount --bind {q(target)} {q(target)}", f"mount -o remount,bind,ro {q(target)}"]
    if _yes(svc.get("PrivateTmp", ["no"])[-1]):
        for d in ("tmp", "var/tmp"):
            cmds.append(f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {q(root / d)}")
    for p in (*paths("InaccessibleDirectories"), *paths("InaccessiblePaths")):
        target = root / p.lstrip("-/")
        if target.is_dir():
            cmds.append(f"mount -t tmpfs -o ro,mode=000,nosuid,nodev,noexec tmpfs {q(target)}")
    return cmds
UNIT_NOT_APPLICABLE = {"Restart", "RestartSec", "RestartPreventExitStatus", "PIDFile", "TimeoutStartSec",
                       "TimeoutStopSec", "ExecReload", "ExecStop", "KillMode", "KillSignal", "RemainAfterExit"}


# -- STUN ------------------------------------------------------------------------------

def stun_binding_request(txid: bytes) -> bytes:
    return struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, txid)


def parse_binding_response(data: bytes, txid: bytes) -> tuple[str, int]:
    """XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of a binding success response."""
    mtype, length, cookie, rtxid = struct.unpack("!HHI12s", data[:20])
    if mtype != 0x0101 or cookie != 0x2112A442 or rtxid != txid:
        raise ValueError(f"not a binding success for our request: type {mtype:#06x}")
    pos, mapped = 20, None
    while pos + 4 <= 20 + length:
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        value = data[pos + 4:pos + 4 + alen]
        if atype in (0x0020, 0x0001) and value[1] in (0x01, 0x02):
            port = struct.unpack("!H", value[2:4])[0]
            raw = value[4:8] if value[1] == 0x01 else value[4:20]
            if atype == 0x0020:  # XORed with the magic cookie (IPv4), cookie + transaction id (IPv6)
                port ^= 0x2112
                raw = bytes(b ^ m for b, m in zip(raw, struct.pack("!I", 0x2112A442) + txid))
            addr = (str(ipaddress.IPv4Address(raw) if value[1] == 0x01 else ipaddress.IPv6Address(raw)), port)
            if atype == 0x0020 or mapped is None:
                mapped = addr
        pos += 4 + alen + (-alen % 4)
    if mapped is None:
        raise ValueError("binding success without a mapped address")
    return mapped


# -- boot inputs -----------------------------------------------------------------------



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


def seeded_parameters(settings) -> tuple[dict[str, str], str]:  # noqa: ANN001
    """What Parameter Store holds for a TURN stack without a zone (a self-signed certificate
    and key, a fresh secret), and the secret."""
    from stun_infra.instance.boot_inputs import ParameterNames

    names = ParameterNames.under(settings.ssm_path, settings.turn)
    cert, key = self_signed(settings.tls_domain)
    secret = "sandbox-turn-secret-" + os.urandom(12).hex()
    return {names.tls_certificate: cert, names.tls_private_key: key, names.turn_secret: secret}, secret


# -- the sandbox -----------------------------------------------------------------------

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

    def imds_document(self, arch: str) -> dict:
        return {**self.__dict__, "architecture": "x86_64" if arch == "amd64" else arch,
                "local_hostname": f"ip-{self.private_ip.replace('.', '-')}.{self.region}.compute.internal",
                "access_key_id": "ASIASANDBOXINSTANCE1", "secret_access_key": "sandbox-secret-key",
                "session_token": "sandbox-session-token"}


@dataclass
class ScriptRun:
    returncode: int
    seconds: float
    lines: list[tuple[float, str]]
    stages: dict[str, float]

    @property
    def output(self) -> str:
        return "\n".join(text for _, text in self.lines)


_STAGE = re.compile(r"^stun-infra: stage (\S+) (begin|end)(?: \(([0-9]+\.[0-9]+) s\))?$")


def stage_timings(lines: list[tuple[float, str]]) -> dict[str, float]:
    begun: dict[str, float] = {}
    out: dict[str, float] = {}
    for t, text in lines:
        m = _STAGE.match(text.strip())
        if m and m[2] == "begin":
            begun[m[1]] = t
        elif m and m[1] in begun:  # the script's own measure when it gives one
            out[m[1]] = float(m[3]) if m[3] else round(t - begun.pop(m[1]), 2)
            begun.pop(m[1], None)
    for name in begun:
        out[name + " (no end)"] = round(lines[-1][0] - begun[name], 2) if lines else 0.0
    return out


@dataclass
class Sandbox:
    cache: RootfsCache
    workdir: Path
    instance: Instance = field(default_factory=Instance)
    parameters: dict[str, str] = field(default_factory=dict)
    extra_hosts: dict[str, str] = field(default_factory=dict)  # name -> stand-in address
    signer: TestKey | None = None  # signs the agent packages served (default: a fresh key)
    log_group: str = "stun-infra-sandbox"  # the stack's CloudWatch Logs group, created in moto
    bucket: str = SANDBOX_BUCKET  # the stack's package bucket (its virtual-hosted name maps to the downloads stand-in)
    name: str = field(default_factory=lambda: f"{OVERLAY_SOURCE}-{os.getpid()}")

    def __post_init__(self) -> None:
        self.arch = self.cache.info["arch"]
        self.root = self.workdir / "merged"
        if self.signer is None:
            from tests.support.signing import TestKey
            self.signer = TestKey(self.workdir / "signer")
        self.logs = self.workdir / "logs"
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._netns = False
        self.lifecycle_state_file = self.workdir / "target-lifecycle-state"
        self.not_started: dict[str, str] = {}

    def set_lifecycle_state(self, state: str | None) -> None:
        """What IMDS answers for autoscaling/target-lifecycle-state (None: 404)."""
        if state is None:
            self.lifecycle_state_file.unlink(missing_ok=True)
        else:
            self.lifecycle_state_file.write_text(state + "\n")

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> "Sandbox":
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        for d in ("upper", "work", "merged", "logs", "www", "mirror-pool"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        cleanup_stale()
        run(["mount", "-t", "overlay", f"{OVERLAY_SOURCE}-{os.getpid()}", "-o",
             f"lowerdir={self.cache.rootfs},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
             str(self.root)])
        self._make_netns()
        mount_api_filesystems(self.root, self.name)
        self._prepare_rootfs()
        self._start_standins()

    def close(self) -> None:
        errors: list[str] = []
        for label, p in reversed(self._procs):
            self._stop(p)
        self._procs.clear()
        if self._netns:
            pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
            for pid in pids:  # anything still running in our namespace was started by us
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.2 if pids else 0)
        try:
            umount_all(self.workdir)
        except RuntimeError as e:
            errors.append(str(e))
        if self._netns:
            p = subprocess.run(["ip", "netns", "del", self.name], capture_output=True, text=True)
            if p.returncode != 0:
                errors.append(f"ip netns del {self.name}: {p.stderr.strip()}")
            self._netns = False
        if not errors and os.environ.get("STUN_INFRA_BOOT_KEEP") != "1" and not mounts_under(self.workdir):
            for d in ("upper", "work", "merged"):
                shutil.rmtree(self.workdir / d, ignore_errors=True)
        if errors:
            raise RuntimeError("sandbox teardown: " + "; ".join(errors))

    @staticmethod
    def _stop(p: subprocess.Popen) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)

    # -- network namespace -------------------------------------------------------------

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

    def ns(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def chroot(self, *cmd: str) -> list[str]:
        return self.ns("env", "-i", f"PATH={CHROOT_PATH}", "LANG=C.UTF-8", "chroot", str(self.root), *cmd)

    # -- root filesystem ---------------------------------------------------------------

    def aws_hosts(self) -> dict[str, str]:
        from stun_infra.instance import downloads  # the production URLs, so the script runs unchanged

        region = self.instance.region
        hosts = {f"ssm.{region}.amazonaws.com": AWS_API_IP, f"monitoring.{region}.amazonaws.com": AWS_API_IP,
                 f"logs.{region}.amazonaws.com": AWS_API_IP,
                 f"ec2.{region}.amazonaws.com": AWS_API_IP, f"autoscaling.{region}.amazonaws.com": AWS_API_IP,
                 f"elasticloadbalancing.{region}.amazonaws.com": AWS_API_IP}
        for host in downloads.documented_hosts():
            if host not in (IMDS_IP, downloads.PACKAGE_HOST):
                hosts[host.replace("{region}", region)] = DOWNLOADS_IP
        hosts[self.bucket_host] = DOWNLOADS_IP
        return {**hosts, **self.extra_hosts}

    @property
    def bucket_host(self) -> str:
        return f"{self.bucket}.s3.{self.instance.region}.amazonaws.com"

    def user_data(self, settings, boot, *, publish: bool = True, fetch_seconds: int | None = None) -> str:  # noqa: ANN001
        """The user data `pulumi up` gives an instance with these boot inputs, the package it
        names published in the bucket stand-in (unless `publish` is false: a missing package)."""
        from stun_infra.instance import package
        from stun_infra.instance.userdata import render_user_data

        built = package.build(settings, boot)
        if publish:
            self.publish_package(built.data, built.key)
        self.package = built
        return render_user_data(settings, self.bucket, built, boot.expected_public_ip,
                                **({"fetch_seconds": fetch_seconds} if fetch_seconds else {}))

    def publish_package(self, data: bytes, key: str) -> None:
        target = self.www / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def _prepare_rootfs(self) -> None:
        root = self.root
        mirror_host = urllib.parse.urlsplit(self.cache.info["mirror"]).hostname
        hosts = {mirror_host: MIRROR_IP, **self.aws_hosts()}
        self.hosts = hosts
        with open(root / "etc/hosts", "a") as f:
            f.write("\n# stun-infra boot sandbox: stand-ins inside the test's network namespace\n")
            for name, ip in hosts.items():
                f.write(f"{ip} {name}\n")
        # No DNS server exists in the namespace: names resolve through /etc/hosts only.
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")
        names = [n for n, ip in hosts.items() if ip in (AWS_API_IP, DOWNLOADS_IP)]
        self.pki = make_pki(self.workdir / "pki", names)
        shutil.copy(self.pki["ca"], root / "usr/local/share/ca-certificates/stun-infra-sandbox-ca.crt")
        run(self.chroot("update-ca-certificates"))
        # Init system stand-ins: apt's maintainer scripts start nothing (policy-rc.d), and
        # systemctl records what the script asks of it.
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\n# stun-infra boot sandbox: no init system\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        run(self.chroot("dpkg-divert", "--local", "--rename", "--add", "/usr/bin/systemctl"))
        (root / "usr/bin/systemctl").write_text(SYSTEMCTL)
        (root / "usr/bin/systemctl").chmod(0o755)
        if self.arch != host_arch():
            self._host_nft()
        (root / "var/lib/cloud/instance/scripts").mkdir(parents=True, exist_ok=True)

    def _host_nft(self) -> None:
        """Under qemu-user the root's own nft cannot reach the kernel: qemu (7.2) does not
        translate NETLINK_NETFILTER sockets ("Unable to initialize Netlink socket: Protocol
        not supported"). The one deviation of an emulated root: /usr/sbin/nft is diverted
        (before the script installs nftables) to a shim running this machine's nft (the same
        Debian 12 nftables) with its own libraries, so the script's ruleset and the
        reporter's reads reach the kernel unchanged."""
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

    # -- stand-ins ---------------------------------------------------------------------

    def _spawn(self, label: str, *args: str, timeout: float = 30) -> None:
        out = open(self.logs / f"{label}.out", "w")
        p = subprocess.Popen(self.ns(sys.executable, str(STANDINS), *args), stdout=subprocess.PIPE,
                             stderr=out, text=True, start_new_session=True)
        self._procs.append((label, p))
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(p.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or ready[0].strip() != "ready":
            raise RuntimeError(f"stand-in {label} did not start within {timeout}s:\n"
                               f"{(self.logs / f'{label}.out').read_text()[-3000:]}")

    def _start_standins(self) -> None:
        self._start_imds()
        self._spawn("mirror", "files", "--bind", MIRROR_IP, "--port", "80", "--root", str(self.cache.mirror),
                    "--pool-dir", str(self.cache.debs), "--log", str(self.logs / "mirror.jsonl"))
        self.publish_agents()
        role = self.instance.imds_document(self.arch)
        self._spawn("downloads", "files", "--bind", DOWNLOADS_IP, "--port", "80", "--tls-port", "443",
                    "--cert", str(self.pki["cert"]), "--key", str(self.pki["key"]), "--root", str(self.www),
                    "--faults", str(self.faults_file), "--log", str(self.logs / "downloads.jsonl"),
                    "--signed-host", self.bucket_host, "--signing-secret", role["secret_access_key"],
                    "--signing-token", role["session_token"])
        seed = self.workdir / "ssm-seed.json"
        seed.write_text(json.dumps(self.parameters))
        seed.chmod(0o600)
        self._spawn("ssm", "ssm", "--bind", AWS_API_IP, "--cert", str(self.pki["cert"]), "--key",
                    str(self.pki["key"]), "--region", self.instance.region, "--seed", str(seed),
                    "--seed-port", str(MOTO_PLAIN_PORT), "--log-group", self.log_group,
                    "--group-name", self.instance.group_name,
                    "--log", str(self.logs / "ssm.jsonl"), timeout=90)

    def _start_imds(self) -> None:
        doc = self.workdir / "instance.json"
        doc.write_text(json.dumps(self.instance.imds_document(self.arch)))
        self._spawn("imds", "imds", "--instance", str(doc), "--lifecycle", str(self.lifecycle_state_file),
                    "--log", str(self.logs / "imds.jsonl"))

    def stop_and_start(self, public_ip: str, *, imds: bool = True) -> tuple[dict[str, list[str]], dict[str, int | None]]:
        """An EC2 stop and start: every service started as at boot is stopped, /run (a tmpfs)
        is emptied, the metadata service then answers `public_ip` (an instance without an
        Elastic IP gets a new one; `imds` false: it does not answer) and the enabled services
        start as at boot (oneshots first: stun-infra-configure among them). Returns what
        start_enabled_services returns."""
        for label, p in list(self._procs):
            if label.endswith((".service", ".timer")) or label == "imds":
                self._stop(p)
                self._procs.remove((label, p))
        for entry in (self.root / "run").iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (self.root / "run" / "lock").mkdir()
        self.instance.public_ip = public_ip
        if imds:
            self._start_imds()
        return self.start_enabled_services()

    @property
    def www(self) -> Path:
        return self.workdir / "www"

    @property
    def faults_file(self) -> Path:
        """{URL path: fault} the downloads stand-in reads on every request (see boot_standins)."""
        return self.workdir / "download-faults.json"

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

    def requests(self, label: str) -> list[dict]:
        f = self.logs / f"{label}.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []

    def calls(self) -> list[str]:
        f = self.root / CALLS_LOG.lstrip("/")
        return f.read_text().splitlines() if f.exists() else []

    def enable_requests(self) -> list[str]:
        """Units the script asked `systemctl enable` for, in order, with suffixes (whether
        or not enabling them does anything: see enabled_units)."""
        return enable_requests(self.calls())

    def enabled_units(self) -> list[str]:
        """Units the script's `systemctl enable` calls really enabled, as systemd would: only
        those whose [Install] section carries install info (plus their Also= units)."""
        return enabled_units(self.root, self.calls())

    # -- running things ----------------------------------------------------------------

    def run_script(self, text: str, *, timeout: float = 900,
                   echo: Callable[[str], None] | None = None) -> ScriptRun:
        """Run user-data as cloud-init does: an executable file, run as root."""
        script = self.root / "var/lib/cloud/instance/scripts/part-001"
        script.write_text(text)
        script.chmod(0o700)
        lines: list[tuple[float, str]] = []
        t0 = time.monotonic()
        # The one deviation from an instance's environment: Debian's awscli trusts only
        # its bundled cacert.pem, not the system store that holds the sandbox CA.
        cmd = self.chroot("/var/lib/cloud/instance/scripts/part-001")
        cmd.insert(cmd.index("chroot"), f"AWS_CA_BUNDLE={SANDBOX_CA_BUNDLE}")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs.append(("user-data", p))

        def read() -> None:
            for raw in p.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                lines.append((time.monotonic() - t0, line))
                if echo:
                    echo(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop(p)
            rc = -1
            lines.append((time.monotonic() - t0, f"[sandbox] user-data killed after {timeout}s"))
        seconds = time.monotonic() - t0
        reader.join(30)  # the script's `tee` may flush after bash exits
        return ScriptRun(rc, round(seconds, 2), lines, stage_timings(lines))

    def start_unit(self, unit: str, *, stdout: Path) -> tuple[subprocess.Popen, list[str]]:
        """Start `unit` as systemd would; returns the process and the settings not applied.
        A long-running service (simple, exec, notify) keeps running; a oneshot runs its
        ExecStart lines in order (a `-` prefix ignores a failure) and exits."""
        svc = read_unit(self.root, unit)
        ignored = sorted(k for k in svc if k not in UNIT_APPLIED | UNIT_NOT_APPLICABLE)
        unit_type = svc.get("Type", ["simple"])[-1]
        if unit_type not in ("simple", "exec", "notify", "oneshot"):
            raise NotImplementedError(f"{unit}: Type={unit_type}")
        execs = svc.get("ExecStart", [])
        if len(execs) != 1 and not (unit_type == "oneshot" and execs):
            raise ValueError(f"{unit}: {len(execs)} ExecStart lines after drop-ins: {execs}")
        user = svc.get("User", ["root"])[-1]
        group = svc.get("Group", [""])[-1]
        # The script's one deviation (see run_script) holds for the services too: the
        # metrics reporter's AWS CLI must trust the sandbox CA.
        env = {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", "AWS_CA_BUNDLE": SANDBOX_CA_BUNDLE}
        if user != "root":
            home = run(self.chroot("getent", "passwd", user)).stdout.split(":")[5]
            env.update(USER=user, LOGNAME=user, HOME=home, SHELL="/usr/sbin/nologin")
        for f in svc.get("EnvironmentFile", []):
            path = self.root / f.lstrip("-").lstrip("/")
            if path.is_file():
                for line in path.read_text().splitlines():
                    if "=" in line and not line.lstrip().startswith("#"):
                        k, v = line.split("=", 1)
                        env[k.strip()] = v.strip().strip('"')
            elif not f.startswith("-"):
                raise FileNotFoundError(f"{unit}: EnvironmentFile {f} missing")
        for e in svc.get("Environment", []):
            for kv in shlex.split(e):
                k, v = kv.split("=", 1)
                env[k] = v
        # Namespaced mounts of the unit, made in the mount namespace `ip netns exec` creates.
        prep = _sandboxing_mounts(self.root, svc)
        setpriv = ["setpriv"]
        if user != "root":
            setpriv += [f"--reuid={user}", f"--regid={group or user}", "--init-groups"]
        if _yes(svc.get("NoNewPrivileges", ["no"])[-1]):
            setpriv.append("--no-new-privs")
        caps = " ".join(svc.get("CapabilityBoundingSet", [])).split()
        if caps:
            names = [c.lstrip("~").lower().removeprefix("cap_") for c in caps]
            inverted = caps[0].startswith("~")
            setpriv.append("--bounding-set=" + ",".join(
                [f"-{n}" for n in names] if inverted else ["-all", *(f"+{n}" for n in names)]))
        ambient = [c.lower().removeprefix("cap_") for c in " ".join(svc.get("AmbientCapabilities", [])).split()]
        if ambient:
            setpriv += ["--inh-caps=" + ",".join(f"+{c}" for c in ambient),
                        "--ambient-caps=" + ",".join(f"+{c}" for c in ambient)]
        workdir = svc.get("WorkingDirectory", ["/"])[-1].lstrip("-")
        commands = []
        for line in execs:
            argv = shlex.split(line.lstrip("-@:+!"))
            inner = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "chroot", str(self.root),
                     *setpriv, "--", "sh", "-c", f'cd {shlex.quote(workdir)} && exec "$@"', "sh", *argv]
            ignore_failure = "-" in line[:len(line) - len(line.lstrip("-@:+!"))]
            commands.append(f"{{ {shlex.join(inner)} || true; }}" if ignore_failure else shlex.join(inner))
        if unit_type == "oneshot":
            shell = " && ".join([*prep, *commands])
        else:
            shell = " && ".join([*prep, "exec " + commands[0]])
        nofile = svc.get("LimitNOFILE", [""])[-1]

        def limits() -> None:
            if nofile:
                n = resource.RLIM_INFINITY if nofile == "infinity" else int(nofile.split(":")[-1])
                soft = int(nofile.split(":")[0]) if ":" in nofile else n
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, n))
                except ValueError:  # no CAP_SYS_RESOURCE here: as high as this host allows
                    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))

        out = open(stdout, "w")
        p = subprocess.Popen(self.ns("sh", "-c", shell), stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=limits)
        self._procs.append((unit, p))
        return p, ignored

    def running(self) -> list[str]:
        """Labels (unit names, stand-ins) of the processes this sandbox started that still run."""
        return [label for label, p in self._procs if p.poll() is None]

    def start_enabled_services(self) -> tuple[dict[str, list[str]], dict[str, int | None]]:
        """Start the enabled services as boot would: oneshots first (run to completion), then
        the long-running ones, enabled before the start or by those oneshots (stun-infra-configure
        enables and queues coturn's start, which systemd runs once it is done); returns (unit ->
        settings not applied, oneshot -> exit status). A unit whose AssertPathExists= path is
        missing is not started (`not_started`: unit -> that path). Timers are left to the tests
        (they fire later)."""
        ignored: dict[str, list[str]] = {}
        oneshots: dict[str, int | None] = {}
        self.not_started: dict[str, str] = {}
        handled: set[str] = set()
        for only_oneshots in (True, False):
            services = [u for u in self.enabled_units() if u.endswith(".service") and u not in handled]
            kinds = {u: read_unit(self.root, u).get("Type", ["simple"])[-1] for u in services}
            for unit in sorted(services, key=lambda u: kinds[u] != "oneshot"):
                if only_oneshots and kinds[unit] != "oneshot":
                    continue
                handled.add(unit)
                asserted = read_unit(self.root, unit, "Unit").get("AssertPathExists", [])
                if any(p.startswith(("!", "|")) for p in asserted):
                    raise NotImplementedError(f"{unit}: AssertPathExists={asserted}")
                missing = [p for p in asserted if not (self.root / p.lstrip("/")).exists()]
                if missing:
                    self.not_started[unit] = missing[0]
                    continue
                proc, ignored[unit] = self.start_unit(unit, stdout=self.logs / f"{unit}.out")
                if kinds[unit] == "oneshot":
                    try:  # stun-infra-configure under qemu-user takes a while
                        oneshots[unit] = proc.wait(timeout=600)
                    except subprocess.TimeoutExpired:
                        oneshots[unit] = None
        return ignored, oneshots

    def stun_binding(self, server: str, port: int, *, client_ip: str = CLIENT_IP,
                     attempts: int = 20, interval: float = 0.5) -> tuple[str, int]:
        """A STUN binding request from `client_ip` inside the namespace; the mapped address.
        An IPv6 `server` is asked from CLIENT_IPV6 unless `client_ip` says otherwise."""
        family = "AF_INET6" if ":" in server else "AF_INET"
        if family == "AF_INET6" and client_ip == CLIENT_IP:
            client_ip = CLIENT_IPV6
        code = (
            "import os,socket,sys,json\n"
            f"sys.path.insert(0, {str(STANDINS.parent)!r})\n"
            "import boot_sandbox as b\n"
            f"s=socket.socket(socket.{family},socket.SOCK_DGRAM); s.bind(({client_ip!r},0)); s.settimeout(1.0)\n"
            f"for _ in range({attempts}):\n"
            "    tx=os.urandom(12)\n"
            f"    s.sendto(b.stun_binding_request(tx),({server!r},{port}))\n"
            "    try:\n"
            "        data,_=s.recvfrom(2048)\n"
            "    except (socket.timeout, ConnectionRefusedError):\n"
            f"        import time; time.sleep({interval}); continue\n"
            "    print(json.dumps({'local': s.getsockname()[:2], 'mapped': b.parse_binding_response(data,tx)})); break\n"
            "else:\n    sys.exit('no STUN answer')\n"
        )
        p = run(self.ns(sys.executable, "-c", code), timeout=attempts * (1 + interval) + 30)
        doc = json.loads(p.stdout)
        return tuple(doc["local"]), tuple(doc["mapped"])  # type: ignore[return-value]

    def ns_python(self, code: str, *, timeout: float = 60) -> object:
        """Run `code` with this venv's Python inside the namespace (repo importable); it
        must print one JSON document, which is returned."""
        env = {"PATH": os.environ.get("PATH", CHROOT_PATH), "PYTHONPATH": f"{REPO}:{STANDINS.parent}"}
        p = run(self.ns("env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-c", code),
                timeout=timeout)
        return json.loads(p.stdout)

    def manifest(self, exclude: Iterable[str]) -> dict[str, tuple]:
        """(type, mode, uid, gid, sha256 or link target) of every path the overlay holds
        changed since the pristine rootfs, read through the merged view."""
        upper = self.workdir / "upper"
        excluded = tuple(e.strip("/") for e in exclude)
        out: dict[str, tuple] = {}
        for dirpath, dirnames, filenames in os.walk(upper):
            rel_dir = os.path.relpath(dirpath, upper)
            for name in dirnames + filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if rel == excluded or any(rel == e or rel.startswith(e + "/") for e in excluded):
                    continue
                path = self.root / rel
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    out[rel] = ("deleted",)
                    continue
                if os.path.islink(path):
                    out[rel] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    out[rel] = ("dir", oct(st.st_mode), st.st_uid, st.st_gid)
                else:
                    out[rel] = ("file", oct(st.st_mode), st.st_uid, st.st_gid,
                                hashlib.sha256(path.read_bytes()).hexdigest())
        return out


@contextlib.contextmanager
def seeded_sandbox(root: Path, workdir: Path, settings, instance: Instance):  # noqa: ANN001
    """A sandbox for `settings` on `instance`, Parameter Store seeded as for a TURN stack
    without a zone: yields (sandbox, boot inputs, TURN secret)."""
    from stun_infra.instance.metrics import log_group_name
    from tests.support.signing import TestKey

    parameters, secret = seeded_parameters(settings)
    signer = TestKey(workdir / "signer")
    _, boot = sandbox_boot_inputs(settings, instance, signer)
    with Sandbox(root, workdir, instance=instance, parameters=parameters, signer=signer,
                 log_group=log_group_name(settings.project, settings.stack)) as box:
        yield box, boot, secret


def main(argv: list[str]) -> int:
    """`python tests/boot/boot_sandbox.py build-rootfs ARCH...`: build (or find) the cached
    roots ahead of the tests, e.g. in the background while other tests run (.ci/run); the
    tests then wait on the same per-cache lock and use them."""
    if len(argv) < 2 or argv[0] != "build-rootfs":
        print("usage: boot_sandbox.py build-rootfs ARCH...", file=sys.stderr)
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
