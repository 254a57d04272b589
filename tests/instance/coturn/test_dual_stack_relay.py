"""An instance with an IPv6 address: which relay family a client gets, and the IPv6 deny
entries proven against an IPv6 relay, all on exactly the rendered config.

Rendered with `ipv6=` (what the boot script writes when IMDS has an address) the server
listens and relays on it too. Which family a relay gets is coturn's
`allocation-default-address-family` (4.6.1 knows it: `keep` runs clean below). We keep
its default, `ipv4`, which is RFC 8656's (section 7.2): a client gets an IPv4 relay unless
it asks for IPv6 with REQUESTED-ADDRESS-FAMILY, whatever family it reached the server
over. Why: a relay reaches peers of its own family only, and most peers (and every peer
that uses this service's own IPv4 relays) are reachable over IPv4, while browsers do not
send REQUESTED-ADDRESS-FAMILY; `keep` would hand every client that reaches the AAAA
record (dual-stack phones prefer IPv6) a relay that cannot reach IPv4-only peers. An
IPv6-only client still reaches its IPv4 relay over IPv6, which is what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.coturn import (CoturnServer, channel_bind_code, permission_code, rejected_lines,
                       relay_round_trip, settings_for, running_coturn)
from stun_infra.client.turn_client import stun_binding, turn_allocation

from tests.support.netns import INTERNAL_IPV6, PEER_IPV6, PUBLIC_IPV4, SERVER_IPV4, SERVER_IPV6, NetNs

pytestmark = pytest.mark.coturn

KEEP_FAMILY_LINES = ("allocation-default-address-family=keep",)  # the alternative we did not choose


@pytest.fixture(scope="module")
def ipv6_relay(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """Exactly the rendered config of an instance with an IPv6 address; clients come over IPv6."""
    with running_coturn(netns, tmp_path_factory.mktemp("ipv6-relay"), settings_for(),
                        host=SERVER_IPV6, ipv6=SERVER_IPV6) as server:
        yield server


@pytest.fixture(scope="module")
def keep_family_relay(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """The rendered config plus `allocation-default-address-family=keep`, on ports of its own."""
    # Clear of the other servers here and of their alternate ports (coturn also binds port + 1).
    settings = settings_for(stunPort=3490, tlsPorts="[5360]", relayMinPort=51000, relayMaxPort=51099)
    with running_coturn(netns, tmp_path_factory.mktemp("keep-family"), settings, extra_lines=KEEP_FAMILY_LINES,
                        host=SERVER_IPV6, ipv6=SERVER_IPV6) as server:
        yield server


def relayed_address(server: CoturnServer, host: str, family: int | None) -> tuple[str, int]:
    """The relay an allocation from a client reaching `host` gets (asking for `family`, if given)."""
    async def go() -> tuple[str, int]:
        async with turn_allocation((host, server.settings.stun_port), *server.credentials(), timeout=2,
                                   family=family) as relay:
            return relay.relayed_address
    return server.ns.run_async(go)


@pytest.fixture(scope="module")
def ipv6_stun_only(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """STUN-only, exactly the rendered config with an IPv6 address, on ports of its own."""
    settings = settings_for(turn="false", stunPort=3480, tlsPorts="[5350]")
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


# -- which relay family: coturn's default (ipv4) unless the client asks -----------------

def test_an_ipv6_client_that_does_not_ask_gets_an_ipv4_relay(ipv6_relay: CoturnServer):
    assert relayed_address(ipv6_relay, SERVER_IPV6, None)[0] == PUBLIC_IPV4  # the instance's public IPv4


def test_an_ipv6_client_that_asks_for_ipv6_gets_an_ipv6_relay(ipv6_relay: CoturnServer):
    assert relayed_address(ipv6_relay, SERVER_IPV6, 6)[0] == SERVER_IPV6


def test_an_ipv4_client_that_asks_for_ipv6_gets_an_ipv6_relay(ipv6_relay: CoturnServer):
    assert relayed_address(ipv6_relay, SERVER_IPV4, 6)[0] == SERVER_IPV6


def test_an_ipv6_client_that_asks_for_ipv4_gets_an_ipv4_relay(ipv6_relay: CoturnServer):
    assert relayed_address(ipv6_relay, SERVER_IPV6, 4)[0] == PUBLIC_IPV4


def test_allocation_default_address_family_exists_in_this_coturn_and_keep_follows_the_client(
        keep_family_relay: CoturnServer):
    assert rejected_lines(keep_family_relay.boot_log) == []
    assert relayed_address(keep_family_relay, SERVER_IPV6, None)[0] == SERVER_IPV6


def test_the_rendered_config_leaves_the_default_address_family_alone(ipv6_relay: CoturnServer):
    assert not any(line.startswith("allocation-default-address-family") for line in ipv6_relay.conf.splitlines())


# -- the deny list over an IPv6 relay -------------------------------------------------------

@pytest.mark.parametrize("peer", INTERNAL_IPV6)
def test_permission_to_an_internal_ipv6_address_is_refused_with_403(ipv6_relay: CoturnServer, peer):
    assert permission_code(ipv6_relay, peer, family=6) == 403


@pytest.mark.parametrize("peer", INTERNAL_IPV6)
def test_channel_bind_to_an_internal_ipv6_address_is_refused_with_403(ipv6_relay: CoturnServer, peer):
    assert channel_bind_code(ipv6_relay, (peer, 80), family=6) == 403


def test_permission_to_a_documentation_ipv6_peer_is_granted(ipv6_relay: CoturnServer):
    assert permission_code(ipv6_relay, PEER_IPV6, family=6) is None


def test_data_relays_to_a_documentation_ipv6_peer_and_back(ipv6_relay: CoturnServer):
    data, sender, relayed, seen_by_peer = relay_round_trip(ipv6_relay, PEER_IPV6, b"ipv6 relay check", family=6)
    assert data == b"ipv6 relay check"
    assert sender[0] == PEER_IPV6
    assert relayed[0] == SERVER_IPV6
    assert [port for _, port in seen_by_peer] == [relayed[1]]
