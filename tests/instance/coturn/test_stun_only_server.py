"""STUN-only mode (stun-infra:turn false), run by the real coturn 4.6.1 in a throwaway namespace."""

from __future__ import annotations

import pytest

from stun_infra.client.credentials import mint
from stun_infra.client.turn_client import allocate, stun_binding

from tests.support.coturn import CoturnServer, rejected_lines
from tests.support.netns import PEER_IPV4

pytestmark = pytest.mark.coturn


def test_startup_log_has_no_rejected_line(stun_only_server: CoturnServer):
    assert rejected_lines(stun_only_server.boot_log) == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_stun_binding_returns_the_client_address(stun_only_server: CoturnServer, transport):
    binding = stun_only_server.ns.run_async(stun_binding, stun_only_server.stun_address, transport=transport,
                                            timeout=2, local_address=(PEER_IPV4, 0))
    assert binding.mapped_address == binding.local_address


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_allocate_gets_no_relay(stun_only_server: CoturnServer, transport):
    # coturn's stun-only mode drops TURN requests without an answer. The credentials are
    # well-formed but no secret exists in this mode, so nothing could accept them anyway.
    username, password = mint("no-secret-in-stun-only-mode", ttl_seconds=600)
    with pytest.raises(TimeoutError):
        stun_only_server.ns.run_async(allocate, stun_only_server.stun_address, username, password,
                                      transport=transport, timeout=2)
