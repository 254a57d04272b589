"""The log metric filters, evaluated by moto's CloudWatch Logs on REAL coturn 4.6.1 lines.

Real TURN sessions are driven through coturn in a namespace this module creates: released
allocations, an allocation refreshed then released, one left to expire, wrong passwords
and expired REST credentials, plus binding-only clients. The log file, one event per line
as the CloudWatch agent ships it, goes into a moto log group and each LOG_METRICS pattern
is run with filter_log_events; the counts must be exact.

coturn 4.6.1 writes allocation and allocation-end lines only with `verbose`, which the
config has only with stun-infra:sessionLogging, so the session metrics are checked twice:
- with the config rendered for sessionLogging=true plus `max-allocate-lifetime=5`, a
  test-only line that makes the expiry case take 5 s instead of 10 minutes: every
  pattern, exact;
- with the default rendered config: AuthFailures exact, and the verbose-only metrics
  exactly as many as that config writes (none without `verbose`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol
from moto import mock_aws

from stun_infra.instance import metrics
from bench.stun_load import bindings, exchange
from stun_infra.instance.coturn import local_paths, turnserver_conf
from stun_infra.client.credentials import password_for
from stun_infra.client.turn_client import StunError, turn_allocation
from tests.support.coturn import CoturnServer, require_coturn, running_coturn, settings_for
from tests.support.netns import NetNs

pytestmark = pytest.mark.coturn

RELEASED = 3          # allocations released at once (REFRESH lifetime 0)
REFRESHED = 1         # allocated, refreshed, then released
EXPIRED = 1           # allocated, then abandoned until it times out
WRONG_PASSWORD = 2
EXPIRED_CREDENTIAL = 2
BINDING_CLIENTS = 4   # binding-only clients: no session metric may count them
TEST_LIFETIME = 5     # max-allocate-lifetime in the expiry server, seconds
LOG_SETTLE_DEADLINE = 30.0


def rendered_has_verbose(conf: str | None = None) -> bool:
    """Whether the rendered turnserver.conf (default: the project's) sets `verbose`."""
    if conf is None:
        conf = turnserver_conf(settings_for(), public_ip="203.0.113.10", private_ip="198.51.100.1",
                               turn_secret="unused", paths=local_paths(Path("/nonexistent")))
    return any(line.strip() == "verbose" for line in conf.splitlines())


async def drive_sessions(server: CoturnServer, *, expire: bool) -> None:
    address = server.stun_address
    for _ in range(RELEASED):
        username, password = server.credentials()
        async with turn_allocation(address, username, password):
            pass
    for _ in range(REFRESHED):
        username, password = server.credentials()
        async with turn_allocation(address, username, password) as allocation:
            refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
            refresh.attributes["LIFETIME"] = 600
            await asyncio.wait_for(allocation._protocol.request_with_retry(refresh), 5)
    for _ in range(WRONG_PASSWORD):
        username, _ = server.credentials()
        with pytest.raises(StunError) as refused:
            async with turn_allocation(address, username, "not-the-password"):
                pass
        assert refused.value.code == 401
    for i in range(EXPIRED_CREDENTIAL):
        username = f"{int(time.time()) - 60 - i}:expired"
        with pytest.raises(StunError) as refused:
            async with turn_allocation(address, username, password_for(server.secret, username)):
                pass
        assert refused.value.code == 401
    if expire:
        for _ in range(EXPIRED):
            username, password = server.credentials()
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_datagram_endpoint(
                lambda: TurnClientUdpProtocol(address, username=username, password=password, lifetime=600,
                                              channel_refresh_time=600), remote_addr=address)
            await asyncio.wait_for(protocol.connect(), 5)
            protocol.refresh_task.cancel()  # abandon it: no refresh, no release
            protocol.transport.close()


def log_lines(server: CoturnServer) -> list[str]:
    return Path(server.paths.log_file).read_text(errors="replace").splitlines()


def pattern_counts(lines: list[str]) -> dict[str, int]:
    """Each LOG_METRICS pattern run by moto's CloudWatch Logs over the lines, one event per line."""
    group = metrics.log_group_name("stun-infra", "test")
    with mock_aws():
        logs = boto3.client("logs", region_name="eu-west-3")
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="i-0123456789abcdef0")
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines if line.strip()]
        for start in range(0, len(events), 5000):
            logs.put_log_events(logGroupName=group, logStreamName="i-0123456789abcdef0",
                                logEvents=events[start:start + 5000])
        counts = {}
        for metric in metrics.LOG_METRICS:
            found, token = 0, None
            for _ in range(100):
                page = logs.filter_log_events(logGroupName=group, filterPattern=metric.pattern,
                                              **({"nextToken": token} if token else {}))
                found += len(page["events"])
                token = page.get("nextToken")
                if not token:
                    break
            counts[metric.name] = found
    return counts


def settle(server: CoturnServer, done) -> list[str]:
    """The log once `done(lines)` holds (bounded), else as it is at the deadline."""
    deadline = time.monotonic() + LOG_SETTLE_DEADLINE
    while True:
        lines = log_lines(server)
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


@pytest.fixture(scope="module")
def verbose_server(tmp_path_factory) -> Iterator[CoturnServer]:
    require_coturn()
    with NetNs(prefix="stun-logs-v") as ns, running_coturn(
            ns, tmp_path_factory.mktemp("verbose"), settings_for(sessionLogging="true"),
            extra_lines=(f"max-allocate-lifetime={TEST_LIFETIME}",)) as server:
        assert rendered_has_verbose(server.conf)
        yield server


@pytest.fixture(scope="module")
def rendered_server(tmp_path_factory) -> Iterator[CoturnServer]:
    require_coturn()
    with NetNs(prefix="stun-logs-r") as ns, running_coturn(ns, tmp_path_factory.mktemp("rendered"),
                                                            settings_for()) as server:
        yield server


def test_patterns_count_real_session_events_exactly(verbose_server):
    server = verbose_server
    server.ns.run_async(drive_sessions, server, expire=True, deadline=60)
    server.ns.run(lambda: exchange(server.stun_address, bindings(40), sockets=BINDING_CLIENTS))
    allocations = RELEASED + REFRESHED + EXPIRED
    lines = settle(server, lambda ls: sum("delete: realm=" in line for line in ls) >= allocations)

    assert pattern_counts(lines) == {
        metrics.ALLOCATIONS: allocations,
        metrics.SESSIONS_CLOSED: allocations,       # released, refreshed-then-released, expired
        metrics.AUTH_FAILURES: WRONG_PASSWORD + EXPIRED_CREDENTIAL,
    }, "\n".join(lines[-80:])
    # every allocation opened with a 401 challenge: present in the log, counted by nothing
    challenges = [line for line in lines if "error 401: Unauthorized" in line and "user <>" in line]
    assert len(challenges) >= allocations
    assert sum("reason: allocation timeout" in line for line in lines) >= EXPIRED


def test_metric_filters_exist_for_exactly_the_lines_the_config_writes():
    assert [m.name for m in metrics.log_metrics(rendered_has_verbose())] == [metrics.AUTH_FAILURES]
    assert {m.name for m in metrics.log_metrics(True)} == {m.name for m in metrics.LOG_METRICS}


def test_rendered_config_auth_failures_exact_and_session_lines_only_with_verbose(rendered_server):
    server = rendered_server
    server.ns.run_async(drive_sessions, server, expire=False, deadline=60)
    released = RELEASED + REFRESHED
    verbose = rendered_has_verbose(server.conf)
    lines = settle(server, lambda ls: sum("Cannot find credentials" in line for line in ls)
                   >= WRONG_PASSWORD + EXPIRED_CREDENTIAL
                   and (not verbose or sum("delete: realm=" in line for line in ls) >= released))

    assert pattern_counts(lines) == {
        metrics.ALLOCATIONS: released if verbose else 0,
        metrics.SESSIONS_CLOSED: released if verbose else 0,
        metrics.AUTH_FAILURES: WRONG_PASSWORD + EXPIRED_CREDENTIAL,
    }, "\n".join(lines[-80:])
