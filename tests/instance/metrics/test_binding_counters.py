"""The kernel counters, for real: the rendered nftables table and the rendered reporter
around coturn running the rendered config, in a namespace this module creates.

What the kernel counts is compared with what the client sent and received, exactly:
a request is a datagram to the STUN port whose first two bytes are 0x0001 (truncated or
malformed ones included: they did arrive), a success or an error is a response coturn
sent, a UDP allocation is an Allocate success response coturn sent over UDP (the 401
challenge that opens every allocation is an Allocate error, not counted). The numbers
checked are the ones the reporter published: the exact put-metric-data call it made
(a fake `aws`, see conftest.published), per instance and for the fleet.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import UDP_TRANSPORT, make_integrity_key

from stun_infra.instance import metrics
from bench.stun_load import BINDING_ERROR, BINDING_SUCCESS, bindings, exchange, mixed, probes
from tests.support.netns import SERVER_IPV6
from stun_infra.client.credentials import mint
from stun_infra.client.turn_client import StunError, turn_allocation

pytestmark = pytest.mark.coturn

PLAN_COUNTS = {
    "valid": 300,
    "unknown-required-attribute": 40,
    "unknown-optional-attribute": 25,
    "truncated-header": 20,
    "length-past-the-end": 15,
    "one-byte": 10,
    "garbage": 10,
    "binding-indication": 10,
}
STALE_SESSION_WAIT = 80.0  # coturn closes an idle binding-only session after ~60 s (see test_session_logs)


ALLOCATE_SUCCESS = 0x0103
ALLOCATE_ERROR = 0x0113
UDP_ALLOCATIONS = 5
WRONG_PASSWORD = 2
ALLOCATION_BINDINGS = 20
ANSWER_TIMEOUT = 2.0  # seconds per STUN/TURN answer on loopback


def pushed(requests: int, successes: int, errors: int, allocations: int = 0, ipv6_requests: int = 0
           ) -> dict[str, int]:
    return {metrics.BINDING_REQUESTS: requests, metrics.BINDING_SUCCESSES: successes,
            metrics.BINDING_ERRORS: errors, metrics.UDP_ALLOCATIONS: allocations,
            metrics.BINDING_REQUESTS_IPV6: ipv6_requests}


def test_counts_equal_what_was_sent_and_answered(counted_server):
    server, reporter = counted_server
    reporter.run()  # baseline: whatever the startup probes left
    plan = [(p, PLAN_COUNTS[p.name]) for p in probes()]
    sent = server.ns.run(lambda: exchange(server.stun_address, mixed(plan), answer_timeout=0.5))

    values, stdout = reporter.run()

    expected_requests = sum(n for p, n in plan if p.is_request)
    expected_successes = sum(n for p, n in plan if p.answer == BINDING_SUCCESS)
    expected_errors = sum(n for p, n in plan if p.answer == BINDING_ERROR)
    assert sent.sent == sum(PLAN_COUNTS.values())
    assert (sent.requests, sent.successes, sent.errors) == (expected_requests, expected_successes, expected_errors)
    assert set(sent.answers) == {BINDING_SUCCESS, BINDING_ERROR}, sent.answers
    assert values == pushed(expected_requests, expected_successes, expected_errors), stdout


def test_requests_over_ipv6_are_counted_apart_and_in_the_total(counted_server):
    server, reporter = counted_server
    reporter.run()
    over_ipv6 = server.ns.run(lambda: exchange((SERVER_IPV6, server.settings.stun_port), bindings(70),
                                              answer_timeout=ANSWER_TIMEOUT))
    over_ipv4 = server.ns.run(lambda: exchange(server.stun_address, bindings(30), answer_timeout=ANSWER_TIMEOUT))
    values, stdout = reporter.run()
    assert (over_ipv6.successes, over_ipv4.successes) == (70, 30)
    assert values == pushed(100, 100, 0, ipv6_requests=70), stdout


def test_a_run_without_traffic_publishes_zeros(counted_server):
    _, reporter = counted_server
    reporter.run()
    values, _ = reporter.run()
    assert values == pushed(0, 0, 0)


def test_a_reloaded_table_counts_from_zero(counted_server):
    server, reporter = counted_server
    server.ns.run(exchange, server.stun_address, bindings(50))
    reporter.run()
    server.ns.run(exchange, server.stun_address, bindings(70))
    reporter.nft("-f", str(reporter.ruleset))  # what `systemctl reload stun-counters` does
    sent = server.ns.run(exchange, server.stun_address, bindings(30))
    values, _ = reporter.run()
    # the 70 sent before the reload died with the old table; never a negative or a double count
    assert sent.successes == 30
    assert values == pushed(30, 30, 0)


def test_a_failed_publish_sends_the_counts_with_the_next_run(counted_server):
    """The CLI fails (exit 255, as on a throttled or refused call): the state is kept, and
    the next run that succeeds publishes every binding counted since the last success."""
    server, reporter = counted_server
    reporter.run()
    server.ns.run(exchange, server.stun_address, bindings(25))
    reporter.aws.fail("exit 255")
    try:
        failed = reporter.start()
    finally:
        reporter.aws.fail(None)
    assert failed.returncode != 0 and "put-metric-data failed" in failed.stderr, failed.stderr
    assert f"{metrics.BINDING_REQUESTS}=25" in failed.stderr
    sent = server.ns.run(exchange, server.stun_address, bindings(15))
    values, _ = reporter.run()
    assert sent.successes == 15
    assert values == pushed(40, 40, 0)


def test_the_reporter_loads_a_flushed_table_again(counted_server):
    server, reporter = counted_server
    reporter.run()
    reporter.nft("delete", "table", "inet", "stun_infra")  # e.g. `nft flush ruleset` by another unit
    values, _ = reporter.run()
    assert values == pushed(0, 0, 0)
    assert "binding_requests" in reporter.nft("list", "counters", "table", "inet", "stun_infra")
    server.ns.run(exchange, server.stun_address, bindings(12))
    values, _ = reporter.run()
    assert values == pushed(12, 12, 0)


def test_100k_bindings_write_no_log_byte(counted_server):
    """Many clients (5-tuples), fast, then long enough for coturn to close every idle session."""
    server, reporter = counted_server
    log = Path(server.paths.log_file)
    reporter.run()
    before = log.stat().st_size
    sent = server.ns.run(lambda: exchange(server.stun_address, bindings(100_000), sockets=64, window=32,
                                          deadline=120), deadline=150)
    values, _ = reporter.run()
    assert sent.sent == 100_000
    assert sent.successes >= 99_000, f"lost {100_000 - sent.successes} of 100000 on loopback"
    assert values == pushed(100_000, sent.successes, 0)
    time.sleep(STALE_SESSION_WAIT)
    assert server.process.poll() is None
    assert log.stat().st_size == before, log.read_text()[before:][:2000]


# -- TURN allocations over UDP -------------------------------------------------------------

WITNESS = """table inet stun_test
delete table inet stun_test
table inet stun_test {
	counter allocate_requests {}
	counter allocate_errors {}
	chain input {
		type filter hook input priority filter - 20; policy accept;
		udp dport %(port)d @th,64,16 0x0003 counter name "allocate_requests"
	}
	chain output {
		type filter hook output priority filter - 20; policy accept;
		udp sport %(port)d @th,64,16 0x0113 counter name "allocate_errors"
	}
}
"""


@pytest.fixture
def witness(counted_server, tmp_path):
    """A test-only table counting what the product does not: Allocate requests in and Allocate
    errors (401 challenges included) out, so the test knows they passed the same hooks."""
    server, reporter = counted_server
    path = tmp_path / "witness.nft"
    path.write_text(WITNESS % {"port": server.settings.stun_port})
    reporter.nft("-f", str(path))

    def read() -> dict[str, int]:
        listing = json.loads(reporter.nft("-j", "list", "table", "inet", "stun_test"))["nftables"]
        return {i["counter"]["name"]: i["counter"]["packets"] for i in listing if "counter" in i}
    try:
        yield read
    finally:
        reporter.nft("delete", "table", "inet", "stun_test")


async def turn_sessions(server) -> None:
    """UDP_ALLOCATIONS allocations granted and released, WRONG_PASSWORD refused, one over TCP."""
    for _ in range(UDP_ALLOCATIONS):
        async with turn_allocation(server.stun_address, *server.credentials(), timeout=ANSWER_TIMEOUT) as a:
            assert a.relayed_address[1] >= server.settings.relay_min_port
    for _ in range(WRONG_PASSWORD):
        username, _ = mint(server.secret, ttl_seconds=600, user="wrong-password")
        with pytest.raises(StunError) as refused:
            async with turn_allocation(server.stun_address, username, "not-the-password", timeout=ANSWER_TIMEOUT):
                pass
        assert refused.value.code == 401
    async with turn_allocation(server.stun_address, *server.credentials(), transport="tcp",
                               timeout=ANSWER_TIMEOUT):
        pass  # granted over TCP: not a UDP allocation


def test_udp_allocations_are_counted_exactly_and_nothing_else_is(counted_server, witness):
    """Allocations over UDP, mixed with bindings, refused credentials and a TCP allocation:
    UdpAllocations is exactly the allocations granted over UDP. Every one of them opened
    with a 401 challenge (an Allocate error the witness counts), and none of those, the
    refusals, the bindings or the TCP allocation is counted as an allocation."""
    server, reporter = counted_server
    reporter.run()
    before = witness()
    server.ns.run_async(turn_sessions, server, deadline=60)
    sent = server.ns.run(exchange, server.stun_address, bindings(ALLOCATION_BINDINGS))
    values, stdout = reporter.run()
    seen = {k: v - before[k] for k, v in witness().items()}

    assert sent.successes == ALLOCATION_BINDINGS
    assert values == pushed(ALLOCATION_BINDINGS, ALLOCATION_BINDINGS, 0, UDP_ALLOCATIONS), stdout
    # each UDP attempt: an unauthenticated Allocate (answered 401 with a nonce), then an
    # authenticated one (answered success, or 401 again for a wrong password)
    attempts = UDP_ALLOCATIONS + WRONG_PASSWORD
    assert seen == {"allocate_requests": 2 * attempts, "allocate_errors": attempts + WRONG_PASSWORD}, seen


def allocate_raw(server_address, username: str, password: str, *, sends: int) -> list[int]:
    """One UDP allocation whose authenticated Allocate is sent `sends` times (the same bytes,
    as a client retransmits when the answer is lost), then released: the message type of
    every answer to those Allocates."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(ANSWER_TIMEOUT)
        s.connect(server_address)

        def transact(message: stun.Message, times: int = 1) -> list[stun.Message]:
            for _ in range(times):
                s.send(bytes(message))
            return [stun.parse_message(s.recv(65536)) for _ in range(times)]

        request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
        request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        (challenge,) = transact(request)
        assert challenge.attributes["ERROR-CODE"][0] == 401
        realm, nonce = challenge.attributes["REALM"], challenge.attributes["NONCE"]
        key = make_integrity_key(username, realm, password)

        def signed(method: stun.Method, **attributes: object) -> stun.Message:
            m = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
            m.attributes.update(attributes)
            m.attributes.update({"USERNAME": username, "REALM": realm, "NONCE": nonce})
            m.add_message_integrity(key)
            return m

        answers = transact(signed(stun.Method.ALLOCATE, **{"REQUESTED-TRANSPORT": UDP_TRANSPORT}), sends)
        (released,) = transact(signed(stun.Method.REFRESH, LIFETIME=0))
        assert released.message_class == stun.Class.RESPONSE, released
        return [(a.message_method | a.message_class) for a in answers]


def test_a_retransmitted_allocate_is_answered_and_counted_again(counted_server):
    """What the counter counts is success responses sent: coturn answers a retransmitted
    Allocate (same transaction) with the success again, and each answer is counted. On a
    real network that happens only when the first answer was lost."""
    server, reporter = counted_server
    reporter.run()
    answers = server.ns.run(allocate_raw, server.stun_address, *server.credentials(), sends=3)
    values, _ = reporter.run()
    assert answers == [ALLOCATE_SUCCESS] * 3
    assert values == pushed(0, 0, 0, 3)
