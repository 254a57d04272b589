"""An OpenPGP key made for one test run, standing in for AWS's agent signing key: it signs
test packages, and the boot inputs under test pin its fingerprint instead of AWS's."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

import pytest

from stun_infra.instance.downloads import AgentPackage, SigningKey, dearmor


def require_gpg() -> None:
    """gpg makes the test key (gpgv, which verifies, comes with apt everywhere)."""
    missing = [tool for tool in ("gpg", "gpgv", "dpkg-deb") if not shutil.which(tool)]
    if missing:
        message = f"package signing tests need {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)


class TestKey:
    """A fresh ed25519 signing key in its own gpg home directory."""

    __test__ = False  # not a test class

    def __init__(self, home: Path, name: str = "stun-infra test signer"):
        self.home = home
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._gpg("--quick-gen-key", f"{name} <signer@example.invalid>", "ed25519", "sign", "2d")
        self.armored = self._gpg("--armor", "--export").stdout
        self.fingerprint = re.search(r"^fpr:+([0-9A-F]{40}):", self._gpg("--with-colons", "--list-keys").stdout,
                                     re.M)[1]

    def _gpg(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--quiet", "--no-tty",
                                   "--passphrase", "", "--pinentry-mode", "loopback", *args],
                                  capture_output=True, text=True, timeout=120, check=True)
        finally:
            # gpg starts an agent daemon on demand; end it with the call, so no test leaves one behind.
            subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                           capture_output=True, timeout=30)

    @property
    def keyring(self) -> bytes:
        return dearmor(self.armored)

    def sign(self, path: Path, sig: Path | None = None) -> Path:
        sig = sig or path.with_name(path.name + ".sig")
        sig.unlink(missing_ok=True)
        self._gpg("--detach-sign", "--output", str(sig), str(path))
        return sig

    def clearsign(self, path: Path, out: Path) -> Path:
        """`path` with an inline signature (an archive's InRelease)."""
        out.unlink(missing_ok=True)
        self._gpg("--clearsign", "--output", str(out), str(path))
        return out

    def in_place_of_aws(self, agents: Iterable[AgentPackage]) -> tuple[AgentPackage, ...]:
        """The agents with this key pinned instead of the publisher's: fetched from the same
        documented URL when the publisher's is, else embedded."""
        keyring = base64.b64encode(self.keyring).decode()
        return tuple(dataclasses.replace(a, key=SigningKey(self.fingerprint, url=a.key.url) if a.key.url
                                         else SigningKey(self.fingerprint, keyring=keyring)) for a in agents)


def build_deb(out_dir: Path, package: str, arch: str, files: dict[str, str], postinst: str = "",
              preinst: str = "") -> Path:
    """A tiny .deb holding `files` ({path: text}; executables if they start with #!) and its
    maintainer scripts, if given."""
    tree = out_dir / f"{package}-{arch}-tree"
    if tree.exists():
        shutil.rmtree(tree)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: 1.0.0-sandbox\nArchitecture: {arch}\n"
        f"Maintainer: stun-infra tests <tests@example.invalid>\n"
        f"Description: stand-in for {package} built by the stun-infra tests\n")
    for name, script in (("preinst", preinst), ("postinst", postinst)):
        if script:
            (tree / "DEBIAN" / name).write_text(script)
            (tree / "DEBIAN" / name).chmod(0o755)
    for path, text in files.items():
        dest = tree / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(0o755 if text.startswith("#!") else 0o644)
    deb = out_dir / f"{package}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=120)
    return deb
