"""An instance with an IPv6 address, and the IPv6 deny entries proven against an IPv6 relay.

Without an IPv6 address the rendered config relays on the private IPv4 address only, and
coturn then answers every IPv6 peer 443 (address family mismatch) before its deny list is
consulted. Rendered with `ipv6=` (what the boot script writes when IMDS has an address)
the server listens and relays on it too. To prove the IPv6 deny entries themselves (the
IPv4-mapped CVE-2026-27624 range among them), the relay here is that rendering plus one
test-only line: clients reach it over IPv6, so it relays over IPv6
(`allocation-default-address-family=keep`; coturn's default allocates IPv4 unless the
client asks for IPv6).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.coturn import (CoturnServer, channel_bind_code, permission_code, rejected_lines,
                       relay_round_trip, settings_for, running_coturn)
from stun_infra.client.turn_client import stun_binding

from tests.support.netns import PEER_IPV6, SERVER_IPV4, SERVER_IPV6, NetNs

pytestmark = pytest.mark.coturn

IPV6_RELAY_LINES = ("allocation-default-address-family=keep",)
INTERNAL_IPV6 = [
    "::ffff:169.254.169.254",  # IPv4-mapped metadata service (CVE-2026-27624 below 4.9.0)
    "::ffff:a9fe:a9fe",        # the same, hex notation
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::a9fe:a9fe",             # IPv4-compatible (deprecated)
    "::1", "::",
    "fd00:ec2::254",           # AWS metadata service over IPv6
    "fd00:ec2::253",           # AWS DNS over IPv6
    "fe80::1", "ff02::1", "fec0::1",
    "64:ff9b::a9fe:a9fe",      # NAT64 of 169.254.169.254
    "64:ff9b:1::a9fe:a9fe",
    "2002:a9fe:a9fe::1",       # 6to4 of 169.254.169.254
    "2001:0:a9fe:a9fe::1",     # Teredo
    "100::1",
]


@pytest.fixture(scope="module")
def ipv6_relay(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    with running_coturn(netns, tmp_path_factory.mktemp("ipv6-relay"), settings_for(),
                        extra_lines=IPV6_RELAY_LINES, host=SERVER_IPV6, ipv6=SERVER_IPV6) as server:
        yield server


@pytest.fixture(scope="module")
def ipv6_stun_only(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """STUN-only, exactly the rendered config with an IPv6 address, on ports of its own."""
    settings = settings_for(turn="false", stunPort=3480, tlsPort=5350)
    with running_coturn(netns, tmp_path_factory.mktemp("ipv6-stun-only"), settings, host=SERVER_IPV6,
                        ipv6=SERVER_IPV6) as server:
        yield server


def test_rendered_ipv6_config_lists_the_address_once_for_listening_and_relaying(ipv6_relay: CoturnServer):
    lines = ipv6_relay.conf.splitlines()
    assert lines.count(f"listening-ip={SERVER_IPV6}") == 1 and lines.count(f"relay-ip={SERVER_IPV6}") == 1
    assert not any(line.startswith("external-ip=") and ":" in line for line in lines)  # no NAT for IPv6


def test_startup_log_has_no_rejected_line(ipv6_relay: CoturnServer):
    assert rejected_lines(ipv6_relay.boot_log) == []


@pytest.mark.parametrize("host", [SERVER_IPV6, SERVER_IPV4])
def test_binding_answers_on_both_addresses(ipv6_relay: CoturnServer, host):
    binding = ipv6_relay.ns.run_async(stun_binding, (host, ipv6_relay.settings.stun_port), timeout=1, deadline=10)
    if host == SERVER_IPV6:
        assert binding.mapped_address == binding.local_address  # IPv6: no NAT, no external-ip mapping
    else:
        assert binding.mapped_address[1] == binding.local_address[1]  # IPv4 still served as before


def test_stun_only_ipv6_config_starts_clean_and_answers_over_ipv6(ipv6_stun_only: CoturnServer):
    assert rejected_lines(ipv6_stun_only.boot_log) == []
    assert f"listening-ip={SERVER_IPV6}" in ipv6_stun_only.conf.splitlines()
    binding = ipv6_stun_only.ns.run_async(stun_binding, ipv6_stun_only.stun_address, timeout=1, deadline=10)
    assert binding.mapped_address[0] == binding.local_address[0] and ":" in binding.local_address[0]


@pytest.mark.parametrize("peer", INTERNAL_IPV6)
def test_permission_to_an_internal_ipv6_address_is_refused_with_403(ipv6_relay: CoturnServer, peer):
    assert permission_code(ipv6_relay, peer) == 403


@pytest.mark.parametrize("peer", INTERNAL_IPV6)
def test_channel_bind_to_an_internal_ipv6_address_is_refused_with_403(ipv6_relay: CoturnServer, peer):
    assert channel_bind_code(ipv6_relay, (peer, 80)) == 403


def test_permission_to_a_documentation_ipv6_peer_is_granted(ipv6_relay: CoturnServer):
    assert permission_code(ipv6_relay, PEER_IPV6) is None


def test_data_relays_to_a_documentation_ipv6_peer_and_back(ipv6_relay: CoturnServer):
    data, sender, relayed, seen_by_peer = relay_round_trip(ipv6_relay, PEER_IPV6, b"ipv6 relay check")
    assert data == b"ipv6 relay check"
    assert sender[0] == PEER_IPV6
    assert relayed[0] == SERVER_IPV6
    assert [port for _, port in seen_by_peer] == [relayed[1]]
