"""An update published in a Debian archive, as apt and unattended-upgrades read it: captured
.debs rebuilt with a higher version, listed in a `Packages` index, under a `Release` signed
inline (`InRelease`) by a test key that the machine's apt trusts as it trusts Debian's
(a key file in /etc/apt/trusted.gpg.d). Served by the mirror stand-in (its `mirror_updates`)."""

from __future__ import annotations

import email.utils
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from rootfs import run

# Debian's security archive, as a Debian 12 AMI lists it: what unattended-upgrades' default
# Origins-Pattern takes ("origin=Debian,codename=${distro_codename}-security,label=Debian-Security").
SECURITY = {"Origin": "Debian", "Label": "Debian-Security", "Suite": "stable-security",
            "Codename": "bookworm-security", "Components": "main"}
SECURITY_SOURCE = "deb http://deb.debian.org/debian-security bookworm-security main\n"
ARCHIVE_DIR = "debian-security"


def rebuilt(deb: Path, version: str, out_dir: Path) -> Path:
    """`deb` with its control file's Version replaced, nothing else changed."""
    tree = out_dir / (deb.stem + "-tree")
    shutil.rmtree(tree, ignore_errors=True)
    run(["dpkg-deb", "-R", str(deb), str(tree)])
    control = tree / "DEBIAN/control"
    lines = [f"Version: {version}" if line.startswith("Version: ") else line
             for line in control.read_text().splitlines()]
    control.write_text("\n".join(lines) + "\n")
    name = deb.name.split("_")[0]
    arch = deb.stem.rsplit("_", 1)[1]
    out = out_dir / f"{name}_{version.split(':')[-1]}_{arch}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(tree), str(out)])
    shutil.rmtree(tree)
    return out


def _stanza(deb: Path, filename: str) -> str:
    data = deb.read_bytes()
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    return (control.rstrip("\n") + f"\nFilename: {filename}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")


def publish(served: Path, debs: list[Path], arch: str, signer) -> None:  # noqa: ANN001
    """Write the security archive under `served` (the mirror's extra root): the .debs in its
    pool, their index, and the InRelease signed by `signer` (a tests.support.signing.TestKey)."""
    base = served / ARCHIVE_DIR
    dist = base / "dists" / SECURITY["Codename"]
    stanzas = []
    for deb in debs:
        name = deb.name.split("_")[0]
        filename = f"pool/updates/main/{name[0]}/{name}/{deb.name}"
        (base / filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(deb, base / filename)
        stanzas.append(_stanza(deb, filename))
    index = f"main/binary-{arch}/Packages"
    (dist / index).parent.mkdir(parents=True, exist_ok=True)
    (dist / index).write_text("\n".join(stanzas))
    packages = (dist / index).read_bytes()
    release = dist / "Release"
    release.write_text("".join(f"{k}: {v}\n" for k, v in SECURITY.items())
                       + f"Date: {email.utils.formatdate(time.time() - 60, usegmt=True)}\n"
                       + f"Architectures: {arch}\n"
                       + f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} {index}\n")
    signer.clearsign(release, dist / "InRelease")
