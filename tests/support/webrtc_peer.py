"""One aiortc peer, run as its own process inside a test's network namespace.

    python webrtc_peer.py offer  '{"ice_servers": [...], "relay_only": true, "messages": 3}'
    python webrtc_peer.py answer '{}'

Signalling is line-delimited JSON: the offerer prints its offer (after gathering, so it
carries every candidate), reads the answer from stdin, opens a data channel, sends
`messages` messages and prints a report once each has come back from the answerer, which
echoes everything. Every wait is bounded (DEADLINE); the process exits non-zero on timeout.
Run with `ip netns exec`, so the namespace's /etc/netns/<name>/hosts resolves names.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

DEADLINE = 30.0


def emit(doc: dict) -> None:
    print(json.dumps(doc), flush=True)


async def read_line() -> dict:
    """The next JSON line on stdin; {} once stdin is closed."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return json.loads(line) if line.strip() else {}


def selected_pair(pc: RTCPeerConnection) -> dict:
    """The ICE pair the data channel's transport nominated (aioice's view of it)."""
    ice = pc.sctp.transport.transport  # type: ignore[union-attr]  # RTCDtlsTransport -> RTCIceTransport
    pair = ice.iceGatherer._connection._nominated[1]  # component 1: the only one with bundle + rtcp-mux
    out = {side: {"type": c.type, "host": c.host, "port": c.port}
           for side, c in (("local", pair.local_candidate), ("remote", pair.remote_candidate))}
    # A relay candidate's transport knows the client's address as the TURN server saw it
    # (XOR-MAPPED-ADDRESS), which the candidate hides under a relay-only policy.
    mapped = pair.protocol.transport.get_extra_info("related_address")
    out["local"]["turn_mapped"] = list(mapped) if mapped else None
    return out


async def offer(config: dict) -> None:
    servers = [RTCIceServer(**s) for s in config.get("ice_servers", [])]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers,
                                            iceTransportPolicy=RTCIceTransportPolicy.RELAY if config.get("relay_only")
                                            else RTCIceTransportPolicy.ALL))
    channel = pc.createDataChannel("check")
    echoed: asyncio.Queue[str] = asyncio.Queue()
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("message", lambda m: echoed.put_nowait(m))
    await pc.setLocalDescription(await pc.createOffer())
    emit({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    answer = await read_line()
    await pc.setRemoteDescription(RTCSessionDescription(**answer))
    await opened.wait()
    sent = [f"message {i} over the relay" for i in range(config.get("messages", 3))]
    received = []
    for text in sent:
        channel.send(text)
        received.append(await echoed.get())
    emit({"sent": sent, "received": received, "pair": selected_pair(pc),
          "local_candidates": [line for line in pc.localDescription.sdp.splitlines()
                               if line.startswith("a=candidate")]})
    await pc.close()


async def answer(config: dict) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    done = asyncio.Event()

    @pc.on("datachannel")
    def on_channel(channel) -> None:
        channel.on("message", lambda m: channel.send(m))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState in ("closed", "failed"):
            done.set()

    offered = await read_line()
    await pc.setRemoteDescription(RTCSessionDescription(**offered))
    await pc.setLocalDescription(await pc.createAnswer())
    emit({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    await read_line()  # the test says when it is over (or closes stdin)
    await pc.close()


def main() -> int:
    role, config = sys.argv[1], json.loads(sys.argv[2])
    try:
        asyncio.run(asyncio.wait_for({"offer": offer, "answer": answer}[role](config), DEADLINE))
    except (asyncio.TimeoutError, TimeoutError):
        print(f"{role}: no result within {DEADLINE:g}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
