"""The boot sandbox's pure helpers (no root needed): apt sources, apt list names, unit
files with drop-ins, stage timings, STUN response parsing."""

from __future__ import annotations

import os
import struct

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
