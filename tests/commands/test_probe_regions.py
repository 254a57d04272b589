"""`probe -` of a multi-region stack's outputs against the real coturn: every region's endpoint
and the global one are checked, each row names its region, and the global entry's TURN rows
name the region whose instance relayed.

One coturn in the test's network namespace stands in for two regions (eu-west-3 on its IPv4
address, us-east-1 on its IPv6 address); the global name resolves to the IPv4 one inside the
namespace only (`ip netns exec` mounts /etc/netns/<namespace>/hosts over /etc/hosts).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.coturn import CoturnServer, named_dual_stack_coturn, netns  # noqa: F401 - fixture
from tests.support.netns import SERVER_IPV4, SERVER_IPV6, NetNs

from .conftest import RUN_DEADLINE

pytestmark = pytest.mark.coturn

GLOBAL = "turn.regions.test"


@pytest.fixture(scope="module")
def server(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    # public_ip=SERVER_IPV4: the relayed address is the reachable one, as an instance's Elastic IP is.
    with named_dual_stack_coturn(netns, tmp_path_factory, GLOBAL, public_ip=SERVER_IPV4) as server:
        yield server


def region_outputs(host: str, port: int) -> dict:
    return {"stun_uris": [f"stun:{host}:{port}"], "turn_uris": [f"turn:{host}:{port}?transport=udp"]}


@pytest.fixture(scope="module")
def probed(netns: NetNs, server: CoturnServer) -> dict:
    port = server.settings.stun_port
    east, west = region_outputs(f"[{SERVER_IPV6}]", port), region_outputs(SERVER_IPV4, port)
    outputs = {
        "stun_uris": [f"stun:{GLOBAL}:{port}", *west["stun_uris"], *east["stun_uris"]],
        "turn_uris": [f"turn:{GLOBAL}:{port}?transport=udp", *west["turn_uris"], *east["turn_uris"]],
        "global_stun_uris": [f"stun:{GLOBAL}:{port}"], "global_turn_uris": [f"turn:{GLOBAL}:{port}?transport=udp"],
        "turn_shared_secret": server.secret,
        "regions": {"eu-west-3": {**west, "public_ips": [SERVER_IPV4]},
                    "us-east-1": {**east, "public_ipv6s": [SERVER_IPV6]}}}
    with netns.hosts(f"127.0.0.1 localhost\n{SERVER_IPV4} {GLOBAL}\n"):
        result = subprocess.run(
            ["ip", "netns", "exec", netns.name, sys.executable, "-m", "stun_infra", "probe", "-", "--json",
             "--timeout", "2"], input=json.dumps(outputs), capture_output=True, text=True, timeout=RUN_DEADLINE,
            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_every_regions_endpoint_and_the_global_one_are_checked(probed: dict):
    hosts = {(c["host"], c["check"]) for c in probed["checks"]}
    for host in (GLOBAL, SERVER_IPV4, SERVER_IPV6):
        assert {(host, "stun-udp"), (host, "turn-udp")} <= hosts
    assert probed["ok"] is True


def test_each_regions_rows_name_their_region_with_the_round_trip(probed: dict):
    regions = {(c["host"], c["check"]): (c["region"], c["rtt_ms"]) for c in probed["checks"]}
    assert regions[(SERVER_IPV4, "stun-udp")][0] == "eu-west-3"
    assert regions[(SERVER_IPV6, "stun-udp")][0] == "us-east-1"
    assert all(rtt is not None and rtt > 0 for (host, check), (_, rtt) in regions.items() if check == "stun-udp")


def test_the_global_entrys_turn_row_names_the_region_that_relayed(probed: dict):
    (turn,) = [c for c in probed["checks"] if (c["host"], c["check"]) == (GLOBAL, "turn-udp")]
    assert turn["relayed_address"].startswith(f"{SERVER_IPV4}:") and turn["region"] == "global: eu-west-3"
    (stun,) = [c for c in probed["checks"] if (c["host"], c["check"]) == (GLOBAL, "stun-udp")]
    assert stun["region"] == "global"
