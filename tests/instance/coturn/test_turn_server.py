"""The rendered TURN config, run by the real coturn 4.6.1 inside a throwaway network namespace."""

from __future__ import annotations

import secrets
import socket
import ssl
import threading
import time
import warnings
from contextlib import AsyncExitStack
from datetime import datetime, timezone

import pytest

from stun_infra.instance.coturn import DENIED_PEER_RANGES
from stun_infra.client.credentials import MAX_USERNAME_BYTES, mint, password_for
from stun_infra.client.turn_client import (StunError, allocate, make_self_signed, stun_binding, tls_context,
                                    tls_handshake, turn_allocation)

from tests.support.coturn import (CoturnServer, channel_bind_code, permission_code, rejected_lines,
                       relay_round_trip, require_coturn)
from tests.support.netns import PEER_IPV4, PUBLIC_IPV4

pytestmark = pytest.mark.coturn

INTERNAL_IPV4 = [
    "169.254.169.254",   # instance metadata service
    "169.254.169.253",   # VPC DNS
    "127.0.0.1", "127.255.255.254",
    "10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "100.64.0.1", "0.0.0.0", "0.0.0.1", "192.0.0.8", "198.18.0.1",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
]
# On a relay with only an IPv4 address (what an instance gets), coturn answers these
# 443 (address family mismatch) before its deny list; test_dual_stack_relay.py proves
# the IPv6 deny entries themselves against an IPv6 relay.
IPV6_NOTATIONS = [
    "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "::a9fe:a9fe", "::ffff:127.0.0.1", "::1", "::",
    "fd00:ec2::254", "fe80::1", "ff02::1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",
]
OLD_TLS = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]


# -- the config is taken whole ------------------------------------------------------------

def test_startup_log_has_no_rejected_line(turn_server: CoturnServer):
    assert rejected_lines(turn_server.boot_log) == []


def test_startup_log_shows_every_deny_range_loaded(turn_server: CoturnServer):
    for spec in DENIED_PEER_RANGES:
        assert f"Black listing: {spec}" in turn_server.boot_log


def test_startup_log_shows_the_tls_certificate_loaded(turn_server: CoturnServer):
    assert f"TLS1.2: Certificate file found: {turn_server.paths.cert}" in turn_server.boot_log
    assert f"TLS1.2: Private key file found: {turn_server.paths.key}" in turn_server.boot_log


# -- STUN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_stun_binding_returns_the_client_address(turn_server: CoturnServer, transport):
    binding = turn_server.ns.run_async(stun_binding, turn_server.stun_address, transport=transport,
                                       timeout=2, local_address=(PEER_IPV4, 0))
    assert binding.mapped_address == binding.local_address
    assert binding.local_address[0] == PEER_IPV4


def test_stun_binding_over_tls_returns_the_client_address(turn_server: CoturnServer):
    binding = turn_server.ns.run_async(stun_binding, turn_server.tls_address, transport="tcp",
                                       ssl_context=tls_context(), timeout=2, local_address=(PEER_IPV4, 0))
    assert binding.mapped_address == binding.local_address


# -- TLS ----------------------------------------------------------------------------------

def test_tls_1_2_or_newer_completes_with_an_unexpired_certificate(turn_server: CoturnServer):
    handshake = turn_server.ns.run(tls_handshake, turn_server.tls_address, timeout=3)
    assert handshake.version in ("TLSv1.2", "TLSv1.3")
    assert handshake.not_after is not None and handshake.not_after > datetime.now(timezone.utc)


@pytest.mark.parametrize("version", OLD_TLS, ids=["TLSv1.0", "TLSv1.1"])
def test_tls_below_1_2_is_refused(turn_server: CoturnServer, version):
    # coturn 4.6.1 with no-tlsv1/no-tlsv1_1 does not answer such a ClientHello at all
    # (without the options it sends an alert): either way no session is established.
    with pytest.raises((ssl.SSLError, TimeoutError, ConnectionError)):
        turn_server.ns.run(tls_handshake, turn_server.tls_address, timeout=2,
                           context=tls_context(minimum=version, maximum=version))


@pytest.mark.parametrize("version", OLD_TLS, ids=["TLSv1.0", "TLSv1.1"])
def test_the_old_tls_client_really_offers_that_version(tmp_path, version):
    """Control: the refusal above comes from coturn, not from this machine's OpenSSL."""
    require_coturn()  # same tools (openssl) and the same skip/fail rule
    cert, key = make_self_signed(tmp_path, "control.test")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.0/1.1 is the point
        server.minimum_version = version
    server.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve_one() -> None:
            conn, _ = listener.accept()
            conn.settimeout(5)
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        handshake = tls_handshake(listener.getsockname(), timeout=3,
                                  context=tls_context(minimum=version, maximum=version))
        thread.join(timeout=5)
    assert handshake.version == {ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1"}[version]


# -- TURN authentication --------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_allocate_succeeds_with_minted_credentials(turn_server: CoturnServer, transport):
    relayed = turn_server.ns.run_async(allocate, turn_server.stun_address, *turn_server.credentials(),
                                       transport=transport, timeout=2)
    settings = turn_server.settings
    assert relayed[0] == PUBLIC_IPV4  # external-ip: clients are told the public address
    assert settings.relay_min_port <= relayed[1] <= settings.relay_max_port


def test_allocate_over_tls_succeeds_with_minted_credentials(turn_server: CoturnServer):
    async def go():
        async with turn_allocation(turn_server.tls_address, *turn_server.credentials(), transport="tcp",
                                   ssl_context=tls_context(), timeout=2) as relay:
            return relay.relayed_address
    assert turn_server.ns.run_async(go)[0] == PUBLIC_IPV4


def test_the_longest_username_credentials_mints_is_accepted(turn_server: CoturnServer):
    """`credentials --user` stops at coturn's 512-byte username; right at the limit, coturn allocates."""
    expiry_part = len(f"{int(time.time()) + 600}:")
    username, password = turn_server.credentials(user="u" * (MAX_USERNAME_BYTES - expiry_part - 8) + secrets.token_hex(4))
    assert len(username.encode()) == MAX_USERNAME_BYTES
    relayed = turn_server.ns.run_async(allocate, turn_server.stun_address, username, password, timeout=2)
    assert relayed[0] == PUBLIC_IPV4


def test_a_username_one_byte_over_coturns_limit_gets_401(turn_server: CoturnServer):
    """Why `credentials` refuses longer users: coturn 4.6.1 turns a 513-byte username away."""
    prefix = f"{int(time.time()) + 600}:"
    username = prefix + "u" * (MAX_USERNAME_BYTES + 1 - len(prefix) - 8) + secrets.token_hex(4)
    assert len(username.encode()) == MAX_USERNAME_BYTES + 1
    assert _allocate_error(turn_server, username, password_for(turn_server.secret, username)) == 401


def _allocate_error(server: CoturnServer, username: str, password: str) -> int | None:
    with pytest.raises(StunError) as error:
        server.ns.run_async(allocate, server.stun_address, username, password, timeout=2)
    return error.value.code


def test_allocate_with_a_wrong_password_gets_401(turn_server: CoturnServer):
    username, _ = turn_server.credentials()
    assert _allocate_error(turn_server, username, "not-the-password") == 401


def test_allocate_with_expired_credentials_gets_401(turn_server: CoturnServer):
    expired = mint(turn_server.secret, ttl_seconds=60, now=time.time() - 3600)
    assert _allocate_error(turn_server, *expired) == 401


def test_allocate_with_credentials_from_another_secret_gets_401(turn_server: CoturnServer):
    assert _allocate_error(turn_server, *mint(turn_server.secret + "x", ttl_seconds=600)) == 401


def test_allocations_beyond_the_user_quota_get_486(turn_server: CoturnServer):
    quota = turn_server.settings.user_quota
    credentials = turn_server.credentials(user="quota-test")

    async def go() -> int | None:
        async with AsyncExitStack() as stack:
            for _ in range(quota):
                await stack.enter_async_context(
                    turn_allocation(turn_server.stun_address, *credentials, timeout=2))
            try:
                await allocate(turn_server.stun_address, *credentials, timeout=2)
            except StunError as error:
                return error.code
            return None
    assert turn_server.ns.run_async(go) == 486


# -- relaying: never inward, still outward --------------------------------------------------

@pytest.mark.parametrize("peer", INTERNAL_IPV4)
def test_permission_to_an_internal_address_is_refused_with_403(turn_server: CoturnServer, peer):
    assert permission_code(turn_server, peer) == 403


@pytest.mark.parametrize("peer", INTERNAL_IPV4)
def test_channel_bind_to_an_internal_address_is_refused_with_403(turn_server: CoturnServer, peer):
    assert channel_bind_code(turn_server, (peer, 80)) == 403


@pytest.mark.parametrize("peer", IPV6_NOTATIONS)
def test_permission_in_an_ipv6_notation_is_refused_by_the_ipv4_relay(turn_server: CoturnServer, peer):
    assert permission_code(turn_server, peer) in (403, 443)


@pytest.mark.parametrize("peer", IPV6_NOTATIONS)
def test_channel_bind_in_an_ipv6_notation_is_refused_by_the_ipv4_relay(turn_server: CoturnServer, peer):
    assert channel_bind_code(turn_server, (peer, 80)) in (403, 443)


def test_permission_to_a_documentation_peer_is_granted(turn_server: CoturnServer):
    assert permission_code(turn_server, PEER_IPV4) is None


def test_data_relays_to_a_documentation_peer_and_back(turn_server: CoturnServer):
    data, sender, relayed, seen_by_peer = relay_round_trip(turn_server, PEER_IPV4, b"stun-infra relay check")
    assert data == b"stun-infra relay check"
    assert sender[0] == PEER_IPV4
    assert [port for _, port in seen_by_peer] == [relayed[1]]  # the peer saw the relayed port
