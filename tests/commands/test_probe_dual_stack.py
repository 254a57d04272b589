"""`probe` of a dual-stack name: every check runs once over IPv4 and once over IPv6.

The name resolves inside the test's network namespace only: `ip netns exec` mounts
/etc/netns/<namespace>/hosts over /etc/hosts for the command it runs, and that file gives
the name an A and an AAAA address (both ends of the namespace's veth pair), where coturn
runs the rendered config of an instance with an IPv6 address.
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

NAME = "turn.dual-stack.test"


@pytest.fixture(scope="module")
def dual_stack_server(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    with named_dual_stack_coturn(netns, tmp_path_factory, NAME) as server:
        yield server


@pytest.fixture(scope="module")
def dual_stack_name(netns: NetNs) -> Iterator[str]:
    with netns.hosts(f"127.0.0.1 localhost\n{SERVER_IPV4} {NAME}\n{SERVER_IPV6} {NAME}\n"):
        yield NAME


@pytest.fixture(scope="module")
def probed(netns: NetNs, dual_stack_server: CoturnServer, dual_stack_name: str) -> dict:
    result = subprocess.run(
        ["ip", "netns", "exec", netns.name, sys.executable, "-m", "stun_infra", "probe",
         f"{dual_stack_name}:{dual_stack_server.settings.stun_port}", "--secret", dual_stack_server.secret,
         "--json", "--timeout", "2"],
        capture_output=True, text=True, timeout=RUN_DEADLINE, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_every_check_runs_once_per_family(probed: dict):
    kinds = [(c["check"], c["family"]) for c in probed["checks"]]
    assert sorted(kinds) == sorted((k, f) for k in ("stun-udp", "stun-tcp", "tls", "turn-udp") for f in (4, 6))
    assert probed["ok"] is True


def test_the_ipv6_binding_maps_the_client_ipv6_address(probed: dict):
    (binding,) = [c for c in probed["checks"] if (c["check"], c["family"]) == ("stun-udp", 6)]
    assert binding["endpoint"] == f"{NAME}:3478/ipv6" and binding["mapped_address"].startswith("[2001:db8::")


def test_the_ipv4_binding_maps_an_ipv4_address(probed: dict):
    (binding,) = [c for c in probed["checks"] if (c["check"], c["family"]) == ("stun-udp", 4)]
    assert ":" not in binding["mapped_address"].rsplit(":", 1)[0]
