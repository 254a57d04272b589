"""The boot sandbox's pure helpers (no root needed): apt sources, apt list names, unit
files with drop-ins, stage timings, STUN response parsing."""

from __future__ import annotations

import ipaddress
import os
import shutil
import struct
import subprocess

import pytest

import boot_sandbox as sb


def test_apt_sources_deb822_and_one_line():
    files = {
        "debian.sources": (
            "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
            "URIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
            "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
            "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"),
        "extra.list": "# deb http://commented.example/debian bookworm main\n"
                      "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n",
    }
    assert sb.parse_apt_sources(files) == [
        ("http://mirror.example/debian", ["bookworm", "bookworm-updates"]),
        ("http://one.example/debian", ["bookworm"]),
    ]


def test_debian_mirror_env_wins(monkeypatch):
    monkeypatch.setenv("STUN_INFRA_DEBIAN_MIRROR", "http://mirror.example/debian/")
    assert sb.debian_mirror() == "http://mirror.example/debian"


def test_apt_list_names_map_back_to_url_paths():
    host = "deb.debian.org"
    assert sb.apt_list_to_path("deb.debian.org_debian_dists_bookworm_InRelease", host) == \
        "/debian/dists/bookworm/InRelease"
    assert sb.apt_list_to_path("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages", host) == \
        "/debian/dists/bookworm/main/binary-amd64/Packages"
    assert sb.apt_list_to_path("other.org_debian_dists_bookworm_InRelease", host) is None


def test_unit_drop_ins_override_and_reset(tmp_path):
    unit = tmp_path / "lib/systemd/system/demo.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Unit]\nDescription=x\n[Service]\nUser=demo\nExecStart=/bin/a -x\nPrivateTmp=yes\n")
    d = tmp_path / "etc/systemd/system/demo.service.d"
    d.mkdir(parents=True)
    (d / "20-b.conf").write_text("[Service]\nExecStart=\nExecStart=/bin/b\nLimitNOFILE=4096\n")
    (d / "10-a.conf").write_text("[Service]\nLimitNOFILE=1024\n# comment\nRestart=always\n")
    svc = sb.read_unit(tmp_path, "demo.service")
    assert svc["ExecStart"] == ["/bin/b"]
    assert svc["LimitNOFILE"][-1] == "4096"
    assert svc["User"] == ["demo"] and svc["Restart"] == ["always"]
    with pytest.raises(FileNotFoundError):
        sb.read_unit(tmp_path, "missing.service")


UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def _install_tree(root):
    """Units covering what decides `systemctl enable`: search-path order, [Install] in a
    drop-in (systemctl reads it), a reset, Also=, Alias=, no [Install] at all."""
    files = {
        "lib/systemd/system/wanted.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        "lib/systemd/system/shadowed.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        "etc/systemd/system/shadowed.service": "[Service]\nExecStart=/bin/true\n",  # overrides the /lib one
        "etc/systemd/system/plain.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
        "etc/systemd/system/plain.service.d/install.conf": "[Install]\nWantedBy=multi-user.target\n",
        "etc/systemd/system/reset.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
                                            "WantedBy=\n",
        "etc/systemd/system/empty.service": "[Service]\nExecStart=/bin/true\n[Install]\n",
        "etc/systemd/system/leader.service": "[Service]\nExecStart=/bin/true\n[Install]\nAlso=follower.service "
                                             "plain.service\n",
        "etc/systemd/system/follower.service": "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=x.target\n",
        "etc/systemd/system/aliased.service": "[Service]\nExecStart=/bin/true\n[Install]\nAlias=other-name.service\n",
        "etc/systemd/system/ticker.timer": "[Timer]\nOnActiveSec=60\n[Install]\nWantedBy=timers.target\n",
        "etc/systemd/system/ticker.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return ["wanted", "shadowed.service", "plain.service", "reset.service", "empty.service", "leader.service",
            "aliased.service", "ticker.timer", "ticker.service"]


def test_enabled_units_honour_install_like_systemd(tmp_path):
    """A unit is enabled only through its [Install] section: the sandbox's enabled_units
    gives exactly the units real `systemctl --root=DIR enable` links."""
    units = _install_tree(tmp_path)
    calls = ["systemctl daemon-reload", "systemctl enable " + " ".join(units[:4]),
             "systemctl enable " + " ".join(units[4:])]
    assert sb.enable_requests(calls) == [u if "." in u else u + ".service" for u in units]
    assert sb.enabled_units(tmp_path, calls) == ["wanted.service", "plain.service", "follower.service",
                                                 "aliased.service", "ticker.timer"]
    assert sb.install_info(tmp_path, "plain.service") == {"WantedBy": ["multi-user.target"]}  # from its drop-in
    assert sb.install_info(tmp_path, "reset.service") == {} and sb.install_info(tmp_path, "ticker.service") == {}
    assert sb.install_info(tmp_path, "leader.service") == {"Also": ["follower.service", "plain.service"]}
    if not shutil.which("systemctl"):
        pytest.skip("systemctl is not installed: no cross-check with the real one")
    real = tmp_path / "real"
    shutil.copytree(tmp_path, real, symlinks=True, ignore=lambda d, names: ["real"] if d == str(tmp_path) else [])
    for call in calls[1:]:
        done = subprocess.run(["systemctl", f"--root={real}", *call.split()[1:]], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    linked = {os.path.basename(os.readlink(p)) for p in real.rglob("*") if p.is_symlink()}
    assert linked == set(sb.enabled_units(tmp_path, calls))


def _stub(tmp_path):
    """The systemctl stub, its unit directories and calls log moved under tmp_path."""
    text = sb.SYSTEMCTL.replace(os.path.dirname(sb.CALLS_LOG), str(tmp_path / "log"))
    text = text.replace(" ".join(UNIT_DIRS), " ".join(str(tmp_path) + d for d in UNIT_DIRS))
    assert str(tmp_path) + UNIT_DIRS[0] in text
    stub = tmp_path / "systemctl"
    stub.write_text(text)
    return lambda *args: subprocess.run(["sh", str(stub), *args], capture_output=True, text=True, timeout=30)


def test_systemctl_stub_enable_notice_matches_systemctl(tmp_path):
    _install_tree(tmp_path)
    systemctl = _stub(tmp_path)
    alone = systemctl("enable", "ticker.service")
    assert alone.returncode == 0 and alone.stderr.strip() == sb.NO_INSTALL_NOTICE
    # As systemctl: no notice when one of the units has install info, nor with --quiet.
    assert systemctl("enable", "ticker.service", "ticker.timer").stderr == ""
    assert systemctl("-q", "enable", "ticker.service").stderr == ""
    assert systemctl("disable", "ticker.service").stderr == ""
    # Install info from a drop-in counts; a reset one does not; Also= counts.
    for unit, notice in (("plain.service", False), ("reset.service", True), ("empty.service", True),
                         ("leader.service", False), ("aliased.service", False)):
        assert (systemctl("enable", unit).stderr.strip() == sb.NO_INSTALL_NOTICE) is notice, unit
        if shutil.which("systemctl"):
            real = subprocess.run(["systemctl", f"--root={tmp_path}", "enable", unit], capture_output=True,
                                  text=True, timeout=60)
            assert real.returncode == 0 and real.stderr.startswith(sb.NO_INSTALL_NOTICE) is notice, (unit, real.stderr)
    missing = systemctl("enable", "missing.service")
    assert missing.returncode == 5 and "Unit missing.service not found." in missing.stderr
    assert (tmp_path / "log/calls.log").read_text().splitlines()[0] == "systemctl enable ticker.service"
    if shutil.which("systemctl"):
        real = subprocess.run(["systemctl", f"--root={tmp_path}", "enable", "ticker.service"],
                              capture_output=True, text=True, timeout=60)
        assert real.returncode == 0 and real.stderr.startswith(sb.NO_INSTALL_NOTICE + "\n"), real.stderr


def test_stage_timings():
    lines = [(0.0, "stun-infra: stage a begin"), (1.5, "noise"), (2.0, "stun-infra: stage a end"),
             (2.0, "stun-infra: stage b begin"), (5.25, "stun-infra: FAILED at line 3: x")]
    assert sb.stage_timings(lines) == {"a": 2.0, "b (no end)": 3.25}


def test_binding_response_xor_mapped_address():
    txid = os.urandom(12)
    port, ip = 40000, bytes([198, 51, 100, 7])
    xport = port ^ 0x2112
    xip = bytes(b ^ m for b, m in zip(ip, struct.pack("!I", 0x2112A442)))
    attr = struct.pack("!HHBBH4s", 0x0020, 8, 0, 1, xport, xip)
    msg = struct.pack("!HHI12s", 0x0101, len(attr), 0x2112A442, txid) + attr
    assert sb.parse_binding_response(msg, txid) == ("198.51.100.7", 40000)
    with pytest.raises(ValueError):
        sb.parse_binding_response(msg, os.urandom(12))
    assert sb.stun_binding_request(txid)[:8] == struct.pack("!HHI", 1, 0, 0x2112A442)


def test_binding_response_xor_mapped_ipv6_address():
    txid = os.urandom(12)
    port, ip = 40000, ipaddress.IPv6Address("2001:db8:ffff::7").packed
    xip = bytes(b ^ m for b, m in zip(ip, struct.pack("!I", 0x2112A442) + txid))
    attr = struct.pack("!HHBBH16s", 0x0020, 20, 0, 2, port ^ 0x2112, xip)
    msg = struct.pack("!HHI12s", 0x0101, len(attr), 0x2112A442, txid) + attr
    assert sb.parse_binding_response(msg, txid) == ("2001:db8:ffff::7", 40000)
