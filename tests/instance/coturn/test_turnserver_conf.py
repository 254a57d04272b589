"""The rendered turnserver.conf, without running coturn (test_*_server.py beside it run it)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess

import pytest

from stun_infra.instance.coturn import (DENIED_PEER_NETWORKS, DENIED_PEER_RANGES, INSTANCE_PATHS, TEMPLATE,
                               turnserver_conf)
from stun_infra.instance.templating import TEMPLATES_DIR

from tests.support.coturn import settings_for

SHELL_VALUES = dict(public_ip="${PUBLIC_IPV4}", private_ip="${PRIVATE_IPV4}", turn_secret="${TURN_SECRET}")
NEVER = ("allow-loopback-peers", "cli-password", "web-admin", "server-relay", "log-binding", "verbose",
         "user=", "lt-cred-mech", "no-auth", "mobility")


def options(conf: str) -> list[str]:
    """The option lines (comments and blanks dropped)."""
    return [line for line in conf.splitlines() if line and not line.startswith("#")]


def names(conf: str) -> list[str]:
    return [line.split("=", 1)[0] for line in options(conf)]


def turn_conf(**config: object) -> str:
    return turnserver_conf(settings_for(**config), public_ip="203.0.113.10", private_ip="10.0.1.5",
                           turn_secret="test-only-secret", paths=INSTANCE_PATHS)


def stun_only_conf() -> str:
    return turnserver_conf(settings_for(turn=False), public_ip="203.0.113.10", private_ip="10.0.1.5",
                           turn_secret="", paths=INSTANCE_PATHS)


# -- the template can be embedded in the boot script ----------------------------------

def test_template_has_no_dollar_backtick_or_backslash_of_its_own():
    text = (TEMPLATES_DIR / TEMPLATE).read_text()
    assert not set("$`\\") & set(text)


def test_shell_references_pass_through_untouched():
    conf = turnserver_conf(settings_for(), paths=INSTANCE_PATHS, **SHELL_VALUES)
    assert "listening-ip=${PRIVATE_IPV4}" in options(conf)
    assert "relay-ip=${PRIVATE_IPV4}" in options(conf)
    assert "external-ip=${PUBLIC_IPV4}/${PRIVATE_IPV4}" in options(conf)
    assert "static-auth-secret=${TURN_SECRET}" in options(conf)
    assert conf.count("$") == 5  # the template adds none of its own


def test_rendering_leaves_no_template_syntax():
    for conf in (turn_conf(), stun_only_conf()):
        assert "{{" not in conf and "{%" not in conf and "None" not in conf


# -- TURN mode ---------------------------------------------------------------------

def test_turn_mode_uses_rest_api_auth_and_nothing_else():
    conf = turn_conf()
    assert {"use-auth-secret", "static-auth-secret", "realm"} <= set(names(conf))
    assert "static-auth-secret=test-only-secret" in options(conf)
    assert "realm=stun-infra" in options(conf)


def test_ports_quotas_and_bandwidth_come_from_settings():
    conf = options(turn_conf(stunPort=3480, tlsPorts="[5350]", relayMinPort=40000, relayMaxPort=40999,
                             userQuota=7, totalQuota=70, maxBps=123456))
    for line in ("listening-port=3480", "tls-listening-port=5350", "min-port=40000", "max-port=40999",
                 "user-quota=7", "total-quota=70", "max-bps=123456"):
        assert line in conf


@pytest.mark.parametrize("option", ["no-cli", "no-tlsv1", "no-tlsv1_1", "no-multicast-peers", "fingerprint",
                                    "no-software-attribute", "stale-nonce", "simple-log", "no-tcp-relay"])
def test_turn_mode_sets_hardening_option(option):
    assert option in names(turn_conf())


@pytest.mark.parametrize("conf", [turn_conf(), stun_only_conf()], ids=["turn", "stun-only"])
def test_dangerous_or_noisy_options_are_never_set(conf):
    for line in options(conf):
        assert not line.startswith(NEVER), line
        assert line != "cli"


def test_instance_paths_are_used_for_tls_and_log():
    conf = options(turn_conf())
    assert "cert=/etc/coturn/tls/cert.pem" in conf
    assert "pkey=/etc/coturn/tls/key.pem" in conf
    assert "log-file=/var/log/coturn/turnserver.log" in conf


def test_no_option_is_written_twice_except_denied_peer_ip():
    seen = [n for n in names(turn_conf()) if n != "denied-peer-ip"]
    assert len(seen) == len(set(seen))


# -- STUN-only mode ---------------------------------------------------------------------

def test_stun_only_mode_sets_stun_only_and_no_relay_ports_or_secret():
    conf = stun_only_conf()
    assert "stun-only" in names(conf)
    assert "no-udp-relay" in names(conf)
    for absent in ("use-auth-secret", "static-auth-secret", "relay-ip", "min-port", "max-port"):
        assert absent not in names(conf)


def test_stun_only_mode_ignores_a_secret_it_is_given():
    conf = turnserver_conf(settings_for(turn=False), public_ip="203.0.113.10", private_ip="10.0.1.5",
                           turn_secret="must-not-appear", paths=INSTANCE_PATHS)
    assert "must-not-appear" not in conf


# -- the deny list ----------------------------------------------------------------------

def _bounds(spec: str) -> tuple[ipaddress._BaseAddress, ipaddress._BaseAddress]:
    first, last = spec.split("-")
    return ipaddress.ip_address(first), ipaddress.ip_address(last)


def test_every_deny_range_is_written_first_last_never_cidr():
    assert DENIED_PEER_RANGES
    for spec in DENIED_PEER_RANGES:
        assert "/" not in spec and spec.count("-") == 1, spec
        first, last = _bounds(spec)
        assert first.version == last.version and first <= last, spec


def test_every_deny_range_covers_its_whole_cidr_but_the_zero_address():
    for (cidr, _), spec in zip(DENIED_PEER_NETWORKS, DENIED_PEER_RANGES, strict=True):
        net = ipaddress.ip_network(cidr)
        first, last = _bounds(spec)
        assert last == net.broadcast_address, spec
        assert first == (net.network_address + 1 if int(net.network_address) == 0 else net.network_address), spec


def test_no_deny_range_starts_at_the_zero_address():
    # coturn 4.6.1 reads 0.0.0.0 / :: as "unbounded": `::-...` would deny every IPv4 peer.
    for spec in DENIED_PEER_RANGES:
        assert int(_bounds(spec)[0]) != 0, spec


def test_every_deny_range_is_in_the_rendered_conf():
    conf = options(turn_conf())
    for spec in DENIED_PEER_RANGES:
        assert f"denied-peer-ip={spec}" in conf


def test_ipv4_mapped_range_is_written_in_dotted_notation():
    assert "::ffff:0.0.0.0-::ffff:255.255.255.255" in DENIED_PEER_RANGES


def _coturn_in_range(spec: str, peer: str) -> bool:
    """coturn 4.6.1's ioa_addr_in_range: a zero bound is unbounded; IPv4 sorts below IPv6."""
    first, last = _bounds(spec)
    addr = ipaddress.ip_address(peer)

    def le(a, b) -> bool:
        return a.version < b.version if a.version != b.version else a <= b
    return (int(first) == 0 or le(first, addr)) and (int(last) == 0 or le(addr, last))


@pytest.mark.parametrize("peer", ["198.51.100.2", "192.0.2.1", "203.0.113.7", "2001:db8::2"])
def test_documentation_peers_are_not_denied_under_coturn_range_rules(peer):
    assert not any(_coturn_in_range(spec, peer) for spec in DENIED_PEER_RANGES)


@pytest.mark.parametrize("peer", [
    "169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "127.0.0.1", "0.0.0.1",
    "224.0.0.1", "255.255.255.255", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "::a9fe:a9fe", "::1",
    "fd00:ec2::254", "fe80::1", "ff02::1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "2001:0:a9fe::1",
])
def test_internal_peers_are_denied_under_coturn_range_rules(peer):
    assert any(_coturn_in_range(spec, peer) for spec in DENIED_PEER_RANGES)


def test_documentation_ranges_are_left_out_on_purpose():
    for doc in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"):
        net = ipaddress.ip_network(doc)
        for cidr, _ in DENIED_PEER_NETWORKS:
            assert not net.overlaps(ipaddress.ip_network(cidr)) or net.version != ipaddress.ip_network(cidr).version


def test_every_option_name_is_one_coturn_knows():
    if not shutil.which("turnserver"):
        pytest.skip("turnserver is not installed")
    usage = subprocess.run(["turnserver", "--help"], capture_output=True, text=True, timeout=10)
    known = set(re.findall(r"--([a-z0-9_-]+)", usage.stdout + usage.stderr))
    for name in set(names(turn_conf())) | set(names(stun_only_conf())):
        assert name in known, name


def test_boot_script_heredoc_expands_to_the_same_file_as_a_direct_render():
    values = dict(public_ip="203.0.113.10", private_ip="10.0.1.5", turn_secret="test-only-secret")
    heredoc = turnserver_conf(settings_for(), paths=INSTANCE_PATHS, **SHELL_VALUES)
    script = "set -eu\ncat <<EOF\n" + heredoc + "EOF\n"
    env = {"PUBLIC_IPV4": values["public_ip"], "PRIVATE_IPV4": values["private_ip"],
           "TURN_SECRET": values["turn_secret"], "PATH": "/usr/bin:/bin"}
    expanded = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                              timeout=10, check=True).stdout
    assert expanded == turnserver_conf(settings_for(), paths=INSTANCE_PATHS, **values)
