"""Unattended upgrades (on in Debian's cloud images) must never upgrade coturn in place: its
package scripts restart it, dropping every call on every instance within the hour
apt-daily-upgrade.timer spreads them over. apt itself reads the shipped file here, beside a
copy of Debian 12's own 50unattended-upgrades; each entry is then matched the way
unattended-upgrades 2.9 (Debian 12) matches it: `re.match(entry, package name)`
(`is_pkgname_in_blacklist` in /usr/bin/unattended-upgrade)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stun_infra.instance import coturn

from tests.conftest import MODES, instance_files

# Debian 12's /etc/apt/apt.conf.d/50unattended-upgrades (unattended-upgrades 2.9.1), comments cut.
DEBIAN_DEFAULTS = """\
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
};
Unattended-Upgrade::Package-Blacklist {
};
"""


def blacklist_as_apt_reads_it(tmp_path: Path, shipped: dict[str, str]) -> list[str]:
    if not shutil.which("apt-config"):
        if os.environ.get("CI") == "true":
            pytest.fail("apt-config is missing (CI runs on Debian)")
        pytest.skip("apt-config is not installed (not Debian)")
    parts = tmp_path / "apt.conf.d"
    parts.mkdir()
    (parts / "50unattended-upgrades").write_text(DEBIAN_DEFAULTS)
    for path, text in shipped.items():
        (parts / Path(path).name).write_text(text)
    main = tmp_path / "apt.conf"
    main.write_text(f'Dir::Etc::main "/dev/null";\nDir::Etc::parts "{parts}";\n')
    done = subprocess.run(["apt-config", "dump", "Unattended-Upgrade::Package-Blacklist"],
                          env={**os.environ, "APT_CONFIG": str(main)}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return re.findall(r'^Unattended-Upgrade::Package-Blacklist:: "(.*)";$', done.stdout, re.M)


def blocked(blacklist: list[str], package: str) -> bool:
    return any(re.match(entry, package) for entry in blacklist)


@pytest.mark.parametrize("mode", MODES)
def test_unattended_upgrades_never_upgrade_coturn(tmp_path, mode):
    files = instance_files(**MODES[mode])
    shipped = {p: t for p, t in files.items() if p.startswith("/etc/apt/apt.conf.d/")}
    assert list(shipped) == [coturn.UNATTENDED_UPGRADES_PATH]
    blacklist = blacklist_as_apt_reads_it(tmp_path, shipped)
    assert blocked(blacklist, "coturn")


def test_the_rest_of_the_system_keeps_its_automatic_security_updates(tmp_path):
    files = instance_files()
    blacklist = blacklist_as_apt_reads_it(tmp_path, {coturn.UNATTENDED_UPGRADES_PATH:
                                                     files[coturn.UNATTENDED_UPGRADES_PATH]})
    for package in ("libssl3", "openssl", "systemd", "nftables", "awscli", "python3", "linux-image-cloud-amd64",
                    "coturn-extra", "libcoturn"):
        assert not blocked(blacklist, package), package
