"""A TURN client for the drain test, run inside the sandbox's namespace (its own process).

It holds one allocation (credentials minted from $DRAIN_CLIENT_TURN_SECRET) relaying to a UDP echo peer (the test peer), then follows the
test through files in DIR (each wait bounded):
  writes held.json      the allocation relays
  waits  draining       the instance refuses new flows
  writes checked.json   a new allocation from a new client port (refused?) and one more
                        relay round trip through the held allocation (still relaying?)
  then   --release: releases the allocation and exits;
         --hold: keeps it until DIR/stop exists, then releases it
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from stun_infra.client import credentials, turn_client as tc

WAIT_SECONDS = 120


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        self.transport.sendto(data, addr)


def report(path: Path, doc: dict) -> None:
    """Whole or not at all: the test polls for the file and reads it the moment it exists."""
    part = path.with_suffix(".part")
    part.write_text(json.dumps(doc))
    part.rename(path)


async def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {WAIT_SECONDS} s")
        await asyncio.sleep(0.1)


async def round_trip(relay: tc.Allocation, peer, payload: bytes) -> bool:  # noqa: ANN001
    await relay.send(payload, peer)
    data, _ = await relay.receive()
    return data == payload


async def main(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    server = (args.server, args.port)
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=(args.peer, 0))
    peer = echo.get_extra_info("sockname")[:2]
    secret = os.environ["DRAIN_CLIENT_TURN_SECRET"]
    user, password = credentials.mint(secret, ttl_seconds=600, user="held")
    async with tc.turn_allocation(server, user, password, timeout=3) as held:
        report(out / "held.json", {"relayed": list(held.relayed_address),
                                   "relays": await round_trip(held, peer, b"before")})
        await wait_for(out / "draining")
        refused = ""
        try:
            newcomer = credentials.mint(secret, ttl_seconds=600, user="newcomer")
            await tc.allocate(server, *newcomer, timeout=2)
        except (tc.StunError, TimeoutError, OSError) as e:
            refused = f"{type(e).__name__}: {e}"
        report(out / "checked.json", {"refused": refused,
                                      "relays": await round_trip(held, peer, b"while draining")})
        if args.hold:
            await wait_for(out / "stop")
    echo.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--peer", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--hold", action="store_true")
    asyncio.run(main(p.parse_args()))
