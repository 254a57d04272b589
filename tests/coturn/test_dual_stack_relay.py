"""The IPv6 deny entries, proven against an IPv6 relay.

An instance's rendered config relays on its private IPv4 address only, and coturn
then answers every IPv6 peer 443 (address family mismatch) before its deny list is
consulted. To prove the IPv6 entries themselves (the IPv4-mapped CVE-2026-27624 range
among them), this module runs the rendered config plus three test-only lines giving
the server an IPv6 listener and relay; clients reach it over IPv6, so it relays over
IPv6 (`allocation-default-address-family=keep`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import (CoturnServer, channel_bind_code, permission_code, rejected_lines,
                       relay_round_trip, settings_for, start_coturn)
from .netns import PEER_IPV6, SERVER_IPV6, NetNs

pytestmark = pytest.mark.coturn

IPV6_RELAY_LINES = (f"listening-ip={SERVER_IPV6}", f"relay-ip={SERVER_IPV6}",
                    "allocation-default-address-family=keep")
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
    server = start_coturn(netns, tmp_path_factory.mktemp("ipv6-relay"), settings_for(),
                          extra_lines=IPV6_RELAY_LINES, host=SERVER_IPV6)
    try:
        yield server
    finally:
        server.stop()


def test_startup_log_has_no_rejected_line(ipv6_relay: CoturnServer):
    assert rejected_lines(ipv6_relay.boot_log) == []


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
