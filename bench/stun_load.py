"""Fast STUN binding traffic, well-formed or not, for the metrics tests and the benchmark.

stun_infra.client.turn_client (aioice) runs one proper transaction at a time; this sends raw
datagrams as fast as the server answers: a window of requests in flight per socket,
every wait bounded. It builds the malformed messages the counters must classify right
(a truncated header, a length that lies, an unknown comprehension-required attribute
that forces a 420 error response, garbage) and tallies the answers by STUN message type.
Standard library only.

It lives beside the benchmark, not in the product: no command of stun-infra sends load,
and a load generator shipped in the package would be one more thing a user could aim
at a server that is not theirs. The metrics tests import it from here as the bench does.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
HEADER = struct.Struct("!HHI12s")  # type, length, magic cookie, transaction id
UNKNOWN_REQUIRED_ATTRIBUTE = 0x7F00  # comprehension-required range, unassigned: answered 420


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def binding_request(attributes: bytes = b"", *, transaction_id: bytes | None = None) -> bytes:
    tid = transaction_id or os.urandom(12)
    return HEADER.pack(BINDING_REQUEST, len(attributes), MAGIC_COOKIE, tid) + attributes


def message_type(datagram: bytes) -> int | None:
    """The first two bytes as a number: what the kernel counters match."""
    return struct.unpack_from("!H", datagram)[0] if len(datagram) >= 2 else None


@dataclass(frozen=True)
class Probe:
    """A datagram to send and what coturn 4.6.1 answers to it (None: no answer)."""

    name: str
    datagram: bytes
    answer: int | None

    @property
    def is_request(self) -> bool:
        return message_type(self.datagram) == BINDING_REQUEST


def probes() -> list[Probe]:
    """One of each kind of datagram the counters must classify."""
    good = binding_request()
    return [
        Probe("valid", good, BINDING_SUCCESS),
        Probe("unknown-required-attribute", binding_request(attribute(UNKNOWN_REQUIRED_ATTRIBUTE, b"abcd")),
              BINDING_ERROR),
        Probe("unknown-optional-attribute", binding_request(attribute(0xC0FF, b"abcd")), BINDING_SUCCESS),
        Probe("truncated-header", binding_request()[:10], None),
        Probe("length-past-the-end", HEADER.pack(BINDING_REQUEST, 40, MAGIC_COOKIE, os.urandom(12)), None),
        Probe("one-byte", b"\x00", None),
        Probe("garbage", b"GET / HTTP/1.0\r\n\r\n", None),
        Probe("binding-indication", HEADER.pack(0x0011, 0, MAGIC_COOKIE, os.urandom(12)), None),
    ]


@dataclass
class LoadResult:
    sent: int = 0
    requests: int = 0           # datagrams sent whose first two bytes are 0x0001
    answers: dict[int, int] = field(default_factory=dict)  # message type -> datagrams received
    elapsed: float = 0.0        # seconds from the first send to the last answer (or give-up)

    @property
    def successes(self) -> int:
        return self.answers.get(BINDING_SUCCESS, 0)

    @property
    def errors(self) -> int:
        return self.answers.get(BINDING_ERROR, 0)

    @property
    def answered(self) -> int:
        return sum(self.answers.values())


def exchange(server: tuple[str, int], datagrams: Iterable[bytes], *, sockets: int = 1, window: int = 64,
             answer_timeout: float = 1.0, deadline: float = 60.0) -> LoadResult:
    """Send every datagram (round-robin over `sockets` client sockets) and tally the answers.

    At most `window` tracked datagrams (full 20-byte headers) are awaiting an answer per
    socket; one not answered within `answer_timeout` seconds is given up. Stops when all
    are sent and nothing is awaited, or `deadline` seconds after the start.
    """
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    socks = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(max(1, sockets))]
    sel = selectors.DefaultSelector()
    result = LoadResult()
    waiting: list[dict[bytes, float]] = [{} for _ in socks]
    it = iter(datagrams)
    pending: bytes | None = next(it, None)
    start = time.monotonic()
    stop_at = start + deadline
    try:
        for i, s in enumerate(socks):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setblocking(False)
            s.connect(server)
            sel.register(s, selectors.EVENT_READ, i)
        turn = 0
        last_answer = start
        while True:
            now = time.monotonic()
            if now > stop_at:
                break
            # send while some socket has room
            for _ in range(len(socks)):
                if pending is None:
                    break
                i = turn % len(socks)
                turn += 1
                while pending is not None and len(waiting[i]) < window:
                    try:
                        socks[i].send(pending)
                    except BlockingIOError:
                        break
                    result.sent += 1
                    if message_type(pending) == BINDING_REQUEST:
                        result.requests += 1
                    if len(pending) >= HEADER.size:
                        waiting[i][pending[8:20]] = now
                    pending = next(it, None)
            for key, _ in sel.select(timeout=0.01):
                i = key.data
                while True:
                    try:
                        data = socks[i].recv(2048)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    kind = message_type(data)
                    if kind is not None:
                        result.answers[kind] = result.answers.get(kind, 0) + 1
                    if len(data) >= HEADER.size:
                        waiting[i].pop(data[8:20], None)
                    last_answer = time.monotonic()
            now = time.monotonic()
            for w in waiting:
                for tid in [t for t, sent_at in w.items() if now - sent_at > answer_timeout]:
                    del w[tid]
            if pending is None and not any(waiting):
                break
        result.elapsed = last_answer - start
        return result
    finally:
        sel.close()
        for s in socks:
            s.close()


def bindings(count: int) -> Iterable[bytes]:
    """`count` well-formed binding requests, each with a fresh transaction id."""
    header = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE)
    for _ in range(count):
        yield header + os.urandom(12)


def mixed(plan: Sequence[tuple[Probe, int]]) -> list[bytes]:
    """Each probe repeated as planned, interleaved, each copy with a fresh transaction id."""
    out: list[bytes] = []
    longest = max(n for _, n in plan)
    for k in range(longest):
        for probe, n in plan:
            if k < n:
                d = probe.datagram
                out.append(d[:8] + os.urandom(12) + d[20:] if len(d) >= HEADER.size else d)
    return out
