"""A real WebRTC client (aiortc) on an IPv6-only network, through the rendered config.

The client's namespace has one interface with one IPv6 address and no IPv4 at all; the
TURN server's name resolves there to its IPv6 address alone (the namespace's hosts file,
which `ip netns exec` mounts). Forced to relay (iceTransportPolicy "relay"), it gathers a
relay candidate (an IPv4 one: coturn's default family, kept) whose related address is the
client's own IPv6 address as coturn saw it, and carries a data channel through it to an
IPv4 peer, which echoes every message. This is an IPv6-only mobile client reaching an
IPv4 peer through the service.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.coturn import CoturnServer, running_coturn, settings_for
from tests.support.netns import SERVER_IPV4, SERVER_IPV6, V6ONLY_CLIENT, NetNs, link_ipv6_only

pytestmark = pytest.mark.coturn

NAME = "turn.ipv6-only.test"
PEER_SCRIPT = Path(__file__).resolve().parents[2] / "support" / "webrtc_peer.py"
LINE_DEADLINE = 40.0  # seconds for a peer's next JSON line (its own deadline is 30 s)


def require_aiortc() -> None:
    try:
        import aiortc  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the WebRTC test: pip install -e '.[test]' brings aiortc")
        pytest.skip("aiortc is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def relay_server(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """The rendered config of an instance with an IPv6 address; relays announced on an
    address the peer can reach (no 1:1 NAT in a namespace)."""
    with running_coturn(netns, tmp_path_factory.mktemp("webrtc"), settings_for(), ipv6=SERVER_IPV6,
                        public_ip=SERVER_IPV4) as server:
        yield server


@pytest.fixture(scope="module")
def ipv6_only(netns: NetNs) -> Iterator[NetNs]:
    with NetNs("stun-v6only", veth=False) as client:
        link_ipv6_only(netns, client)
        with client.hosts(f"::1 localhost\n{SERVER_IPV6} {NAME}\n"):
            yield client


class Peer:
    """webrtc_peer.py in a namespace; its stdout lines come through a queue (bounded reads)."""

    def __init__(self, ns: NetNs, role: str, config: dict):
        self.process = ns.popen([sys.executable, str(PEER_SCRIPT), role, json.dumps(config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def read(self) -> dict:
        try:
            return json.loads(self.lines.get(timeout=LINE_DEADLINE))
        except queue.Empty:
            self.stop()
            pytest.fail(f"no answer from the peer within {LINE_DEADLINE:g}s: {self.process.stderr.read()[-2000:]}")

    def send(self, doc: dict) -> None:
        self.process.stdin.write(json.dumps(doc) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def call(netns: NetNs, relay_server: CoturnServer, ipv6_only: NetNs) -> dict:
    require_aiortc()
    username, credential = relay_server.credentials()
    uri = f"turn:{NAME}:{relay_server.settings.stun_port}?transport=udp"
    offerer = Peer(ipv6_only, "offer", {"ice_servers": [{"urls": uri, "username": username,
                                                          "credential": credential}],
                                        "relay_only": True, "messages": 3})
    answerer = Peer(netns, "answer", {})
    try:
        offer = offerer.read()
        answerer.send(offer)
        offerer.send(answerer.read())
        report = offerer.read()
        answerer.send({})
        report["offer"] = offer
        report["ipv4_in_client"] = subprocess.run(
            ["ip", "-n", ipv6_only.name, "-4", "-o", "addr", "show"], capture_output=True, text=True,
            timeout=10).stdout
        return report
    finally:
        offerer.stop()
        answerer.stop()


def test_the_client_network_has_no_ipv4_but_loopback(call: dict):
    assert [line.split()[3] for line in call["ipv4_in_client"].splitlines()] == ["127.0.0.1/8"]


def test_the_client_gathers_a_relay_candidate_related_to_its_own_ipv6_address(call: dict):
    candidates = [c for c in call["offer"]["sdp"].splitlines() if c.startswith("a=candidate")]
    relay = [c.split() for c in candidates if " typ relay " in c]
    assert relay and all(c[7] == "relay" for c in relay) and len(relay) == len(candidates)
    (one,) = relay
    assert one[4] == SERVER_IPV4  # the relay coturn handed out: IPv4, its default family
    # A relay-only agent writes raddr 0.0.0.0 (RFC 9429 section 3.5.3); the TURN transport
    # under the candidate holds the client's own IPv6 address, as coturn saw it.
    assert call["pair"]["local"]["turn_mapped"][0] == V6ONLY_CLIENT


def test_the_data_channel_runs_over_the_relay_candidate(call: dict):
    assert call["received"] == call["sent"] and len(call["sent"]) == 3
    assert call["pair"]["local"]["type"] == "relay" and call["pair"]["local"]["host"] == SERVER_IPV4
