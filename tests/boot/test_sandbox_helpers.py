"""The boot sandbox's pure helpers (no root needed): the mirror setting, apt list names, stage
timings, the metadata stand-in's paths, cloud-init's log times."""

from __future__ import annotations

import boot_sandbox as sb
import rootfs
import standin_servers


def test_debian_mirror_env_wins(monkeypatch):
    monkeypatch.setenv("STUN_INFRA_DEBIAN_MIRROR", "http://mirror.example/debian/")
    assert rootfs.debian_mirror() == "http://mirror.example/debian"


def test_apt_list_names_map_back_to_url_paths():
    host = "deb.debian.org"
    assert rootfs.apt_list_to_path("deb.debian.org_debian_dists_bookworm_InRelease", host) == \
        "/debian/dists/bookworm/InRelease"
    assert rootfs.apt_list_to_path("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages", host) == \
        "/debian/dists/bookworm/main/binary-amd64/Packages"
    assert rootfs.apt_list_to_path("other.org_debian_dists_bookworm_InRelease", host) is None


def test_stage_timings_are_the_scripts_own_figures():
    output = ("stun-infra: stage a begin\nnoise\nstun-infra: stage a end (2.00 s)\n"
              "stun-infra: stage b begin\nstun-infra: FAILED at line 3: x\n")
    assert sb.stage_timings(output) == {"a": 2.0}


def test_imds_serves_every_api_version_and_lists_directories():
    """cloud-init reads dated API versions and crawls directory listings; the scripts read
    /latest/ leaves."""
    assert standin_servers._latest("/2021-03-23/meta-data/instance-id") == "/latest/meta-data/instance-id"
    assert standin_servers._latest("/latest/api/token") == "/latest/api/token"
    assert standin_servers._latest("/latest/meta-data/") == "/latest/meta-data/"
    table = {"instance-id": "i-1", "placement/region": "r", "iam/security-credentials/role": "{}",
             "network/interfaces/macs/0a:00/local-ipv4s": "10.0.0.1"}
    assert standin_servers._listing(table, "") == "iam/\ninstance-id\nnetwork/\nplacement/"
    assert standin_servers._listing(table, "iam/security-credentials/") == "role"
    assert standin_servers._listing(table, "network/interfaces/macs") == "0a:00/"
    assert standin_servers._listing(table, "nothing/") == ""


def test_cloud_init_log_times_are_utc():
    assert sb._log_time("1970-01-01 00:01:00,500") == 60.5
