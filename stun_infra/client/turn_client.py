"""Small STUN/TURN/TLS client checks, for `stun-infra probe` and the tests.

STUN messages, transactions and the TURN client come from the aioice library; nothing
here parses STUN by hand. Every network wait is bounded by the `timeout` argument
(seconds); a server that does not answer in time raises `TimeoutError`, a server that
answers with a STUN error raises `StunError` carrying its code (401, 403, ...).

The STUN/TURN functions are coroutines (run them with `asyncio.run`); `tls_handshake`
is a plain function. Certificates are made and read with `cryptography`
(`stun_infra.common.certificates`), never by shelling out.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from aioice import stun
from aioice.turn import UDP_TRANSPORT, TurnClientProtocol, TurnClientTcpProtocol, TurnClientUdpProtocol

from stun_infra.common.certificates import not_after as certificate_expiry, write_self_signed

Address = tuple[str, int]
Transport = Literal["udp", "tcp"]

ALLOCATION_LIFETIME = 600  # seconds asked for in ALLOCATE; refreshes are aioice's job
FIRST_CHANNEL = 0x4000     # channel numbers run 0x4000-0x4FFF (RFC 8656 section 12)
ALLOCATE_TRIES = 3         # client ports to try when the server answers 437 (RFC 8656 section 7.4)


# REQUESTED-ADDRESS-FAMILY (RFC 8656 section 18.1): the relay's family, one byte (0x01 IPv4,
# 0x02 IPv6) then three reserved. aioice does not know the attribute; registered here so
# aioice's own encoder writes it (the value is a 32-bit word, family in the top byte).
REQUESTED_ADDRESS_FAMILY = (0x0017, "REQUESTED-ADDRESS-FAMILY", stun.pack_unsigned, stun.unpack_unsigned)
stun.ATTRIBUTES_BY_TYPE.setdefault(REQUESTED_ADDRESS_FAMILY[0], REQUESTED_ADDRESS_FAMILY)
stun.ATTRIBUTES_BY_NAME.setdefault(REQUESTED_ADDRESS_FAMILY[1], REQUESTED_ADDRESS_FAMILY)
ADDRESS_FAMILY = {4: 0x01 << 24, 6: 0x02 << 24}
Family = Literal[4, 6]


class StunError(Exception):
    """The server answered with a STUN error response."""

    def __init__(self, code: int | None, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(f"STUN error {code}: {reason}")


def _stun_error(exc: stun.TransactionFailed) -> StunError:
    code, reason = exc.response.attributes.get("ERROR-CODE", (None, "no ERROR-CODE attribute"))
    return StunError(code, reason)


# -- connections ----------------------------------------------------------------------

async def _open(server: Address, *, transport: Transport, timeout: float,
                username: str | None = None, password: str | None = None,
                ssl_context: ssl.SSLContext | None = None,
                local_address: Address | None = None) -> TurnClientProtocol:
    """A connected aioice client protocol (it runs STUN transactions, with or without TURN auth)."""
    loop = asyncio.get_running_loop()
    args = dict(username=username, password=password, lifetime=ALLOCATION_LIFETIME,
                channel_refresh_time=ALLOCATION_LIFETIME)
    protocol: TurnClientProtocol
    if transport == "udp":
        if ssl_context is not None:
            raise ValueError("ssl_context: TLS needs transport='tcp'")
        _, protocol = await asyncio.wait_for(loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(server, **args), remote_addr=server,
            local_addr=local_address), timeout)
    elif transport == "tcp":
        _, protocol = await asyncio.wait_for(loop.create_connection(
            lambda: TurnClientTcpProtocol(server, **args), host=server[0], port=server[1],
            ssl=ssl_context, local_addr=local_address), timeout)
    else:
        raise ValueError(f"transport: got {transport!r}, must be 'udp' or 'tcp'")
    return protocol


async def _request(protocol: TurnClientProtocol, request: stun.Message, timeout: float) -> stun.Message:
    """One transaction (with the 401-then-authenticate retry aioice does), bounded by `timeout`."""
    try:
        response, _ = await asyncio.wait_for(protocol.request_with_retry(request), timeout)
    except stun.TransactionFailed as exc:
        raise _stun_error(exc) from None
    except stun.TransactionTimeout:
        raise TimeoutError("no STUN response") from None
    return response


# -- STUN binding -----------------------------------------------------------------------

@dataclass(frozen=True)
class Binding:
    mapped_address: Address  # the client's address as the server saw it
    local_address: Address   # the client socket's own address
    rtt: float               # seconds, request to response


async def stun_binding(server: Address, *, transport: Transport = "udp", timeout: float = 3.0,
                       ssl_context: ssl.SSLContext | None = None,
                       local_address: Address | None = None) -> Binding:
    """A STUN Binding request over UDP, TCP or TLS (tcp + ssl_context), optionally from
    `local_address`."""
    protocol = await _open(server, transport=transport, timeout=timeout, ssl_context=ssl_context,
                           local_address=local_address)
    try:
        sockname = protocol.transport.get_extra_info("sockname")
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        started = time.monotonic()
        response = await _request(protocol, request, timeout)
        rtt = time.monotonic() - started
    finally:
        protocol.transport.close()
    mapped = response.attributes.get("XOR-MAPPED-ADDRESS") or response.attributes.get("MAPPED-ADDRESS")
    if mapped is None:
        raise ConnectionError("binding response carries no (XOR-)MAPPED-ADDRESS")
    return Binding(mapped_address=mapped, local_address=(sockname[0], sockname[1]), rtt=rtt)


# -- TURN -------------------------------------------------------------------------------

class Allocation:
    """A live TURN allocation; get one from `turn_allocation`."""

    def __init__(self, protocol: TurnClientProtocol, relayed: Address, mapped: Address,
                 timeout: float):
        self._protocol = protocol
        self._timeout = timeout
        self._received: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self._next_channel = FIRST_CHANNEL
        self.relayed_address = relayed
        self.mapped_address = mapped
        protocol.receiver = _Inbox(self._received)

    async def create_permission(self, peer_ip: str) -> int | None:
        """CreatePermission toward `peer_ip`: None when granted, else the STUN error code."""
        request = stun.Message(message_method=stun.Method.CREATE_PERMISSION,
                               message_class=stun.Class.REQUEST)
        request.attributes["XOR-PEER-ADDRESS"] = (peer_ip, 0)
        return await self._error_code(request)

    async def channel_bind(self, peer: Address) -> int | None:
        """ChannelBind of a fresh channel number to `peer`: None when bound, else the error code."""
        channel = self._next_channel
        self._next_channel += 1
        request = stun.Message(message_method=stun.Method.CHANNEL_BIND, message_class=stun.Class.REQUEST)
        request.attributes["CHANNEL-NUMBER"] = channel
        request.attributes["XOR-PEER-ADDRESS"] = peer
        return await self._error_code(request)

    async def refresh(self, lifetime: int = ALLOCATION_LIFETIME) -> int | None:
        """REFRESH the allocation now, as a client does every few minutes, with the credentials
        it was made with: None when granted, else the STUN error code."""
        request = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        request.attributes["LIFETIME"] = lifetime
        return await self._error_code(request)

    async def _error_code(self, request: stun.Message) -> int | None:
        """Send `request`: None when the server grants it, else its STUN error code."""
        try:
            await _request(self._protocol, request, self._timeout)
        except StunError as exc:
            return exc.code
        return None

    async def send(self, data: bytes, peer: Address) -> None:
        """Relay `data` to `peer` (aioice binds a channel to it first)."""
        try:
            await asyncio.wait_for(self._protocol.send_data(data, peer), self._timeout)
        except stun.TransactionFailed as exc:
            raise _stun_error(exc) from None

    async def receive(self) -> tuple[bytes, Address]:
        """The next datagram a peer sent to the relayed address, and that peer."""
        return await asyncio.wait_for(self._received.get(), self._timeout)

    async def close(self) -> None:
        """Release the allocation (REFRESH lifetime 0) and close the connection."""
        try:
            await asyncio.wait_for(self._protocol.delete(), self._timeout)
        except (TimeoutError, stun.TransactionError):
            pass
        finally:
            self._protocol.transport.close()


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[bytes, Address]]):
        self._queue = queue

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._queue.put_nowait((data, addr))


async def _connect(protocol: TurnClientProtocol, family: Family | None) -> Address:
    """ALLOCATE as aioice's `connect` does, plus REQUESTED-ADDRESS-FAMILY when `family` is given."""
    if family is None:
        return await protocol.connect()
    request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    request.attributes["LIFETIME"] = protocol.lifetime
    request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
    request.attributes["REQUESTED-ADDRESS-FAMILY"] = ADDRESS_FAMILY[family]
    response, _ = await protocol.request_with_retry(request)
    for name in ("LIFETIME", "XOR-MAPPED-ADDRESS", "XOR-RELAYED-ADDRESS"):
        if name not in response.attributes:
            raise ConnectionError(f"TURN allocation response is missing {name}")
    protocol.relayed_address = response.attributes["XOR-RELAYED-ADDRESS"]
    protocol.mapped_address = response.attributes["XOR-MAPPED-ADDRESS"]
    protocol.refresh_task = asyncio.create_task(protocol.refresh(response.attributes["LIFETIME"]))
    return protocol.relayed_address


async def _allocate_once(server: Address, username: str, password: str, *, transport: Transport,
                         timeout: float, ssl_context: ssl.SSLContext | None,
                         family: Family | None = None) -> Allocation:
    protocol = await _open(server, transport=transport, timeout=timeout, username=username,
                           password=password, ssl_context=ssl_context)
    try:
        try:
            relayed = await asyncio.wait_for(_connect(protocol, family), timeout)
        except stun.TransactionFailed as exc:
            raise _stun_error(exc) from None
        except stun.TransactionTimeout:
            raise TimeoutError("no ALLOCATE response") from None
        assert protocol.mapped_address is not None
        return Allocation(protocol, relayed, protocol.mapped_address, timeout)
    except BaseException:
        protocol.transport.close()
        raise


@asynccontextmanager
async def turn_allocation(server: Address, username: str, password: str, *,
                          transport: Transport = "udp", timeout: float = 3.0,
                          ssl_context: ssl.SSLContext | None = None,
                          family: Family | None = None) -> AsyncIterator[Allocation]:
    """ALLOCATE a UDP relay with long-term credentials; released on exit.

    `family` (4 or 6) asks for a relay of that address family (REQUESTED-ADDRESS-FAMILY);
    None leaves the choice to the server.

    Raises StunError (e.g. 401 for a wrong or expired credential) or TimeoutError. A 437
    (the server still holds an allocation on this client port, e.g. one just deleted) is
    retried from new ports, three tries in all, as RFC 8656 section 7.4 asks.
    """
    for attempt in range(1, ALLOCATE_TRIES + 1):
        try:
            allocation = await _allocate_once(server, username, password, transport=transport,
                                              timeout=timeout, ssl_context=ssl_context, family=family)
            break
        except StunError as exc:
            if exc.code != 437 or attempt == ALLOCATE_TRIES:
                raise
    try:
        yield allocation
    finally:
        await allocation.close()


async def allocate(server: Address, username: str, password: str, *,
                   transport: Transport = "udp", timeout: float = 3.0) -> Address:
    """ALLOCATE, then release at once: the relayed address the server handed out."""
    async with turn_allocation(server, username, password, transport=transport,
                               timeout=timeout) as allocation:
        return allocation.relayed_address


# -- TLS --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TlsHandshake:
    version: str                 # "TLSv1.3", "TLSv1.2", ...
    cipher: str
    not_after: datetime | None   # certificate expiry (UTC); None if it could not be read
    certificate: bytes = b""     # the server's certificate, DER


def tls_context(*, minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
                cafile: str | None = None) -> ssl.SSLContext:
    """A client context. Without `cafile` the certificate is not verified (a probe of a
    self-signed server). Below TLS 1.2 the security level is lowered so that OpenSSL 3
    really offers TLS 1.0/1.1 and a refusal can only come from the server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if minimum < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # the ssl module deprecates naming TLS 1.0/1.1: here it is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
        context.maximum_version = maximum
    return context


def tls_handshake(server: Address, *, timeout: float = 3.0, context: ssl.SSLContext | None = None,
                  server_name: str | None = None) -> TlsHandshake:
    """Complete a TLS handshake with `server`; raises ssl.SSLError if it is refused."""
    context = context or tls_context()
    with socket.create_connection(server, timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            version = tls.version() or ""
            cipher = (tls.cipher() or ("",))[0]
    return TlsHandshake(version=version, cipher=cipher,
                        not_after=certificate_expiry(der) if der else None, certificate=der or b"")


def make_self_signed(out_dir: Path, common_name: str, *, days: int = 30) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (P-256) for local runs: (cert.pem, key.pem).

    The names match `stun_infra.instance.coturn.local_paths(out_dir)`. The key is mode 0600.
    """
    return write_self_signed(out_dir, common_name, days=days)
