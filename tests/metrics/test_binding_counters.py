"""The binding counters, for real: the rendered nftables table and the rendered reporter
around coturn running the rendered config, in a namespace this module creates.

What the kernel counts is compared with what the client sent and received, exactly:
a request is a datagram to the STUN port whose first two bytes are 0x0001 (truncated or
malformed ones included: they did arrive), a success or an error is a response coturn
sent. The numbers checked are the ones the reporter pushed over StatsD.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stun_infra import metrics
from stun_infra.binding_load import BINDING_ERROR, BINDING_SUCCESS, bindings, exchange, mixed, probes

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


def pushed(requests: int, successes: int, errors: int) -> dict[str, int]:
    return {metrics.BINDING_REQUESTS: requests, metrics.BINDING_SUCCESSES: successes,
            metrics.BINDING_ERRORS: errors}


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


def test_a_run_without_traffic_pushes_zeros(counted_server):
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
