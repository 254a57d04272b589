"""Credentials from `stun-infra credentials` against the real coturn holding the same secret.

The server is the coturn tests' fixture (rendered config, in a throwaway network
namespace); `probe` runs inside that namespace with `ip netns exec`.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from stun_infra.client.turn_client import StunError, allocate
from tests.support.coturn import CoturnServer, netns, turn_server  # noqa: F401 - fixtures
from tests.support.netns import SERVER_IPV4

from .conftest import CLI, RUN_DEADLINE, assert_one_line_error, cli

pytestmark = pytest.mark.coturn

TTL_SECONDS = 6


def _probe_in_namespace(server: CoturnServer, ice: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", server.ns.name, *CLI, "probe", "-", "--timeout", "2"],
                          input=json.dumps(ice), capture_output=True, text=True, timeout=RUN_DEADLINE)


def test_credentials_are_accepted_then_rejected_once_expired(turn_server: CoturnServer):
    result = cli("credentials", f"--secret={turn_server.secret}",  # may start with "-"
                 "--ttl", f"{TTL_SECONDS}s", "--user", "alice",
                 SERVER_IPV4)
    assert result.returncode == 0, result.stderr
    ice = json.loads(result.stdout)
    turn = ice["iceServers"][1]
    username, password = turn["username"], turn["credential"]
    expiry = int(username.split(":")[0])
    assert expiry - time.time() <= TTL_SECONDS

    # accepted: a direct ALLOCATE, and every check of `probe` with the printed block
    relayed = turn_server.ns.run_async(allocate, turn_server.stun_address, username, password, timeout=2)
    assert relayed[0]
    probed = _probe_in_namespace(turn_server, ice)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert "6 checks: 6 ok" in probed.stdout
    assert time.time() < expiry, "the accepted half ran past the expiry; raise TTL_SECONDS"

    # expired: coturn refuses the same pair with 401
    time.sleep(max(0.0, expiry + 1.5 - time.time()))
    with pytest.raises(StunError) as refused:
        turn_server.ns.run_async(allocate, turn_server.stun_address, username, password, timeout=2)
    assert refused.value.code == 401
    probed = _probe_in_namespace(turn_server, ice)
    line = assert_one_line_error(probed, "3 of 6 checks failed", "turn-udp: TURN credentials rejected (401)",
                                 "turn-tcp: TURN credentials rejected (401)",
                                 "turn-tls: TURN credentials rejected (401)")
    assert "stun-udp" not in line  # STUN and TLS still pass


def test_credentials_from_another_secret_are_rejected(turn_server: CoturnServer):
    result = cli("credentials", "--secret", "some-other-secret", SERVER_IPV4)
    turn = json.loads(result.stdout)["iceServers"][1]
    with pytest.raises(StunError) as refused:
        turn_server.ns.run_async(allocate, turn_server.stun_address, turn["username"], turn["credential"],
                                 timeout=2)
    assert refused.value.code == 401


def test_probe_with_the_stack_secret_mints_its_own_credentials(turn_server: CoturnServer):
    outputs = {"stun_uris": [f"stun:{SERVER_IPV4}:{turn_server.settings.stun_port}"],
               "turn_uris": [f"turns:{SERVER_IPV4}:{turn_server.settings.tls.coturn_port}?transport=tcp"],
               "turn_shared_secret": turn_server.secret}
    probed = subprocess.run(["ip", "netns", "exec", turn_server.ns.name, *CLI, "probe", "-", "--json"],
                            input=json.dumps(outputs), capture_output=True, text=True, timeout=RUN_DEADLINE)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    doc = json.loads(probed.stdout)
    assert [c["check"] for c in doc["checks"]] == ["stun-udp", "stun-tcp", "tls", "turn-tls"]
    assert all(c["ok"] for c in doc["checks"])
    assert turn_server.secret not in probed.stdout + probed.stderr
