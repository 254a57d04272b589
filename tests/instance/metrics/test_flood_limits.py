"""One unauthenticated source cannot make coturn write without bound: the real coturn 4.6.1
with the rendered config, behind the rendered ruleset, in a network namespace. coturn logs a
line for each request whose credentials it cannot check; the kernel lets through at most
PER_SOURCE_BURST of them at once and PER_SOURCE_RATE a second from one address, and never
limits bindings. bench/log_flood.py measures the same flood's bytes and the disk's time to full."""

from __future__ import annotations

import json
import time

import pytest

from bench.log_flood import flood
from bench.stun_load import bindings, exchange
from stun_infra.instance import flood_limits

pytestmark = pytest.mark.coturn

REFUSED_LINE = "check_stun_auth: Cannot find credentials of user <1:"


def limited(reporter) -> int:
    listing = json.loads(reporter.nft("-j", "list", "counter", "inet", "stun_infra", flood_limits.LIMITED_COUNTER))
    return next(item["counter"]["packets"] for item in listing["nftables"] if "counter" in item)


def refused_lines(server) -> int:
    return server.startup_log().count(REFUSED_LINE)


def test_a_source_flooding_refused_allocates_gets_its_burst_then_its_rate_through(counted_server):
    server, reporter = counted_server
    lines, dropped = refused_lines(server), limited(reporter)
    t0 = time.monotonic()
    done = reporter.ns.run(flood, server.stun_address, b"1:" + b"a" * 100, count=2000, seconds=10, deadline=30)
    through = done.sent - (limited(reporter) - dropped)
    # every request the kernel let through was logged by coturn, one line each
    deadline = time.monotonic() + 5
    while refused_lines(server) - lines < through and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused_lines(server) - lines == through
    allowed = flood_limits.PER_SOURCE_BURST + flood_limits.PER_SOURCE_RATE * (time.monotonic() - t0) + 1
    assert done.sent > allowed and through <= allowed, (done, through)


def test_bindings_from_a_limited_source_are_never_limited(counted_server):
    server, reporter = counted_server
    dropped = limited(reporter)
    reporter.ns.run(flood, server.stun_address, b"1:x", count=500, seconds=5, deadline=20)  # over its budget now
    assert limited(reporter) > dropped
    answered = reporter.ns.run(exchange, server.stun_address, bindings(2000), deadline=30)
    assert answered.successes == 2000
