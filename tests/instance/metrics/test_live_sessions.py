"""Live sessions on the real coturn: the count the reporter publishes equals the TURN
allocations a test holds open at that moment, and falls back once they are released."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import pytest

from stun_infra.client.turn_client import turn_allocation

SETTLE_DEADLINE = 10.0  # seconds for coturn to close the relay sockets of released allocations


def settle_to_zero(reporter) -> None:
    """Bounded: a released allocation's relay socket closes within about a second."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while True:
        reporter.run()
        if reporter.live == 0:
            return
        assert time.monotonic() < deadline, f"{reporter.live} relay sockets still open after release"


@pytest.mark.parametrize("held", [0, 1, 7])
def test_live_sessions_equal_the_allocations_held_open(counted_server, held):
    server, reporter = counted_server
    settle_to_zero(reporter)

    async def hold_and_report() -> tuple[int, list]:
        async with AsyncExitStack() as stack:
            relays = [await stack.enter_async_context(
                turn_allocation(server.stun_address, *server.credentials(), timeout=2)) for _ in range(held)]
            reporter.run()  # while every allocation is live
            return reporter.live, [r.relayed_address for r in relays]

    live, relayed = server.ns.run_async(hold_and_report)
    assert len(set(relayed)) == held
    assert live == held
    settle_to_zero(reporter)  # and back to none once released (bounded)
