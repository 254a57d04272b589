"""The rendered reporter's arithmetic and publishing, without a kernel: `nft` is a stand-in
script printing what `nft -j list table inet stun_infra` prints (format taken from nftables
1.0.6), `aws` a stand-in recording the put-metric-data call (conftest.FakeAws)."""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stun_infra.instance import binding_counters, metrics

from stun_infra.client.turn_client import make_self_signed
from tests.support.coturn import settings_for

from .conftest import NAMESPACE, REGION, FakeAws, published, reporter_env

METRICS = {c.name: c.metric for c in binding_counters.COUNTERS}


@pytest.fixture(scope="module")
def reporter(tmp_path_factory):
    path = tmp_path_factory.mktemp("reporter") / "stun_metrics_reporter.py"
    # TURN on (the defaults); runs here read live sessions from a fake table (--proc-net)
    path.write_text(binding_counters.reporter_script(settings_for()))
    spec = importlib.util.spec_from_file_location("stun_metrics_reporter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.path = path
    return module


def reading(table: int, boot: str = "boot-a", **packets: int) -> dict:
    return {"table": table, "boot_id": boot, "counters": {n: packets.get(n, 0) for n in METRICS}}


def by_metric(**packets: int) -> dict[str, int]:
    return {METRICS[n]: packets.get(n, 0) for n in METRICS}


def sent(**packets: int) -> dict[str, int]:
    """What one run publishes: the counters' deltas and the live sessions (none here)."""
    return {**by_metric(**packets), metrics.LIVE_SESSIONS: 0}


def test_reporter_is_standard_library_only(reporter):
    imports = {line.split()[1].split(".")[0] for line in reporter.path.read_text().splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= set(sys.stdlib_module_names), imports


def test_reporter_names_the_contracts_metrics(reporter):
    assert reporter.METRICS == METRICS
    assert set(METRICS.values()) == set(metrics.COUNTER_METRICS)
    assert METRICS["allocate_successes"] == metrics.UDP_ALLOCATIONS == "UdpAllocations"
    assert reporter.DIMENSION_SETS == metrics.counter_dimension_sets() == [["InstanceId"], []]
    assert reporter.PUBLISH_TIMEOUT == binding_counters.PUBLISH_TIMEOUT_SECONDS == 30
    assert (reporter.ENV_REGION, reporter.ENV_NAMESPACE, reporter.ENV_INSTANCE_ID,
            reporter.ENV_TLS_ADDRESS) == binding_counters.METRICS_ENV


def test_delta_is_the_difference_on_the_same_table_and_boot(reporter):
    before = reading(7, binding_requests=100, binding_successes=90, binding_errors=3, allocate_successes=4)
    now = reading(7, binding_requests=160, binding_successes=140, binding_errors=5, allocate_successes=11)
    assert reporter.deltas(before, now) == by_metric(binding_requests=60, binding_successes=50, binding_errors=2,
                                                     allocate_successes=7)


@pytest.mark.parametrize("before", [
    None,                                                  # first run ever
    reading(7, binding_requests=10**6, allocate_successes=10**4),               # reloaded table: new handle
    reading(9, boot="boot-b", binding_requests=10**6, allocate_successes=10**4),  # rebooted (handles restart)
], ids=["first-run", "reloaded-table", "reboot"])
def test_restarted_counters_count_whole(reporter, before):
    now = reading(9, binding_requests=42, binding_successes=40, binding_errors=1, allocate_successes=5)
    assert reporter.deltas(before, now) == by_metric(binding_requests=42, binding_successes=40, binding_errors=1,
                                                     allocate_successes=5)


def test_a_counter_that_went_down_counts_from_zero(reporter):
    """`nft reset counters` keeps the table: never push a negative number."""
    before = reading(7, binding_requests=500, allocate_successes=50)
    assert reporter.deltas(before, reading(7, binding_requests=20, allocate_successes=2)) == by_metric(
        binding_requests=20, allocate_successes=2)


def test_metric_data_is_one_datum_per_metric_per_instance_and_for_the_fleet(reporter):
    data = reporter.metric_data(by_metric(binding_requests=3, binding_successes=2, allocate_successes=1),
                                {"InstanceId": "i-0abc"}, "2025-01-02T03:04:05Z")
    expected = []
    for metric, value in ((metrics.BINDING_REQUESTS, 3), (metrics.BINDING_SUCCESSES, 2),
                          (metrics.BINDING_ERRORS, 0), (metrics.BINDING_REQUESTS_IPV6, 0),
                          (metrics.UDP_ALLOCATIONS, 1)):
        common = {"Timestamp": "2025-01-02T03:04:05Z", "Value": value, "Unit": "Count"}
        expected += [{"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}], **common},
                     {"MetricName": metric, **common}]  # the fleet: no Dimensions at all
    assert sorted(data, key=json.dumps) == sorted(expected, key=json.dumps)
    assert len(data) == 10  # PutMetricData takes up to 1000


def fake_nft(tmp_path: Path, table_handle: int, **packets: int) -> str:
    """A stand-in for `nft` printing a table listing, as nftables 1.0.6 does."""
    listing = {"nftables": [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "stun_infra", "handle": table_handle}},
        *({"counter": {"family": "inet", "name": n, "table": "stun_infra", "handle": i + 2,
                       "packets": packets.get(n, 0), "bytes": 48 * packets.get(n, 0)}}
          for i, n in enumerate(METRICS)),
        {"chain": {"family": "inet", "table": "stun_infra", "name": "input", "handle": 5}},
    ]}
    script = tmp_path / "nft"
    script.write_text(f"#!{sys.executable}\nimport sys\nprint({json.dumps(json.dumps(listing))})\n")
    script.chmod(0o755)
    return str(script)


def run_reporter(reporter, nft: str, state: Path, aws: FakeAws, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The script as the timer runs it (`env`: more of its EnvironmentFile), with no relay socket
    in its (empty) socket tables."""
    proc_net = aws.dir.parent / "proc-net"
    proc_net.mkdir(parents=True, exist_ok=True)
    (proc_net / "udp").write_text("  sl  local_address rem_address   st\n")
    return subprocess.run([sys.executable, str(reporter.path), "--nft", nft, "--state", str(state),
                           "--proc-net", str(proc_net), *args],
                          env={**reporter_env(aws), **env}, capture_output=True, text=True, timeout=60)


def publish(reporter, nft: str, state: Path, aws: FakeAws) -> tuple[dict[str, int], str]:
    """One successful run: (metric -> value of its one put-metric-data call, stdout)."""
    before = len(aws.calls())
    done = run_reporter(reporter, nft, state, aws)
    assert done.returncode == 0, done.stderr
    (call,) = aws.calls()[before:]
    return published(call, live=True), done.stdout


def test_runs_publish_deltas_and_keep_state_between_runs(reporter, tmp_path):
    state, aws = tmp_path / "lib" / "stun-metrics.json", FakeAws(tmp_path / "bin")
    first, _ = publish(reporter, fake_nft(tmp_path, 4, binding_requests=10, binding_successes=9), state, aws)
    assert first == sent(binding_requests=10, binding_successes=9)
    second, out = publish(reporter, fake_nft(tmp_path, 4, binding_requests=25, binding_successes=23,
                                             binding_errors=1, allocate_successes=3), state, aws)
    assert second == sent(binding_requests=15, binding_successes=14, binding_errors=1, allocate_successes=3)
    assert f"{metrics.BINDING_REQUESTS}=15" in out and f"{metrics.UDP_ALLOCATIONS}=3" in out
    saved = json.loads(state.read_text())
    assert saved["table"] == 4 and saved["counters"]["binding_requests"] == 25 and saved["boot_id"]


@pytest.mark.parametrize("how", ["exit 255", "exit 1"])
def test_a_failed_publish_keeps_the_previous_state(reporter, tmp_path, how):
    state, aws = tmp_path / "stun-metrics.json", FakeAws(tmp_path / "bin")
    publish(reporter, fake_nft(tmp_path, 4, binding_requests=10, binding_successes=10), state, aws)
    saved = state.read_bytes()
    aws.fail(how)
    for packets in (30, 45):  # two failed runs in a row
        done = run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=packets, binding_successes=packets),
                            state, aws)
        assert done.returncode != 0 and state.read_bytes() == saved
        # one line for the journal: why, and what is kept
        assert done.stderr.count("\n") == 1 and "put-metric-data failed" in done.stderr, done.stderr
        assert f"exit {how.split()[1]}" in done.stderr and "Throttling" in done.stderr, done.stderr
        assert f"{metrics.BINDING_REQUESTS}={packets - 10}" in done.stderr, done.stderr
    # each failed call carried everything since the last success
    assert [published(c, live=True) for c in aws.calls()[1:]] == [
        sent(binding_requests=n, binding_successes=n) for n in (20, 35)]
    aws.fail(None)
    again, _ = publish(reporter, fake_nft(tmp_path, 4, binding_requests=50, binding_successes=49), state, aws)
    assert again == sent(binding_requests=40, binding_successes=39)  # everything since the last success
    assert len(aws.calls()) == 4


def test_a_publish_that_hangs_is_cut_off_and_kept(reporter, tmp_path, monkeypatch):
    """The CLI is bounded (PUBLISH_TIMEOUT): a hung call is killed and reported as a failure."""
    aws = FakeAws(tmp_path / "bin")
    aws.fail("hang")
    monkeypatch.setenv("PATH", reporter_env(aws)["PATH"])
    monkeypatch.setattr(reporter, "PUBLISH_TIMEOUT", 1)
    t0 = time.monotonic()
    why = reporter.publish(reporter.metric_data(by_metric(binding_requests=1), {"InstanceId": "i-1"},
                                                "2025-01-02T03:04:05Z"), REGION, NAMESPACE)
    assert why == "timed out after 1 s" and time.monotonic() - t0 < 10
    assert len(aws.calls()) == 1


def test_options_override_the_environment_file(reporter, tmp_path):
    state, aws = tmp_path / "stun-metrics.json", FakeAws(tmp_path / "bin")
    done = run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=2), state, aws,
                        "--region", "us-east-2", "--namespace", "StunInfra/other", "--instance-id", "i-0other")
    assert done.returncode == 0, done.stderr
    (call,) = aws.calls()
    assert published(call, region="us-east-2", namespace="StunInfra/other", instance_id="i-0other",
                     live=True) == sent(binding_requests=2)


def test_without_region_namespace_or_instance_id_nothing_runs(reporter, tmp_path):
    aws = FakeAws(tmp_path / "bin")
    env = {k: v for k, v in aws.env().items() if k not in binding_counters.METRICS_ENV}
    done = subprocess.run([sys.executable, str(reporter.path), "--nft", fake_nft(tmp_path, 4),
                           "--state", str(tmp_path / "state.json")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "region, namespace, instance_id" in done.stderr, done.stderr
    assert not aws.calls() and not (tmp_path / "state.json").exists()


def udp_row(slot: int, local: str, remote: str, uid: int) -> str:
    """One line of /proc/net/udp (layout of Linux 6.x)."""
    return (f"{slot:5d}: {local} {remote} 07 00000000:00000000 00:00000000 00000000 {uid:5d}        0 "
            f"{1000 + slot} 2 0000000000000000 0")


def test_live_sessions_count_coturns_unconnected_relay_sockets(reporter, tmp_path):
    """Only sockets in the relay range, with no remote address, owned by coturn's user count:
    an IPv6 relay too; not another user's socket in the range (an ephemeral client port),
    not a connected one, not coturn's listening port."""
    low, high = reporter.RELAY_PORTS
    coturn, other = 106, 0
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops"
    (tmp_path / "udp").write_text("\n".join([header,
        udp_row(0, f"0A2A0010:{low:04X}", "00000000:0000", coturn),           # relay, first port
        udp_row(1, f"0A2A0010:{high:04X}", "00000000:0000", coturn),          # relay, last port
        udp_row(2, f"0A2A0010:{low + 5:04X}", "00000000:0000", other),        # someone else's
        udp_row(3, f"0A2A0010:{low + 6:04X}", "08080808:0035", coturn),       # connected
        udp_row(4, "0A2A0010:0D96", "00000000:0000", coturn),                 # 3478, the listener
        udp_row(5, f"0A2A0010:{low - 1:04X}", "00000000:0000", coturn),       # below the range
    ]) + "\n")
    (tmp_path / "udp6").write_text("\n".join([header, udp_row(
        0, f"B80D0120000000000000000001000000:{low + 9:04X}", "00000000000000000000000000000000:0000", coturn)]) + "\n")
    assert reporter.live_sessions(str(coturn), str(tmp_path)) == 3
    (tmp_path / "udp6").unlink()  # IPv6 disabled: no udp6 table
    assert reporter.live_sessions(str(coturn), str(tmp_path)) == 2


def test_stun_only_reporter_publishes_the_counters_alone(tmp_path):
    """STUN only: nothing is relayed, so no LiveSessions datum (and the script still runs)."""
    script = tmp_path / "reporter.py"
    script.write_text(binding_counters.reporter_script(settings_for(turn=False)))
    aws = FakeAws(tmp_path / "bin")
    done = subprocess.run([sys.executable, str(script), "--nft", fake_nft(tmp_path, 4, binding_requests=5),
                           "--state", str(tmp_path / "state.json")], env=reporter_env(aws), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (call,) = aws.calls()
    assert published(call) == by_metric(binding_requests=5)  # live=False: exactly the counters


def test_counts_go_out_exactly_once_when_the_state_cannot_be_saved(reporter, tmp_path):
    """A disk that cannot take the state (full, read-only; here its folder is a file) must not
    let a run publish counts the next run publishes again."""
    aws = FakeAws(tmp_path / "bin")
    blocked = tmp_path / "lib"
    blocked.write_text("not a folder")
    state = blocked / "stun-metrics.json"
    done = run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=10, binding_successes=10), state, aws)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "cannot save the state" in done.stderr, done.stderr
    (gauges_only,) = aws.calls()  # a full disk still reports itself, and the heartbeat
    assert published(gauges_only, live=True, counters=False) == {metrics.LIVE_SESSIONS: 0}
    blocked.unlink()  # the disk is fixed
    publish(reporter, fake_nft(tmp_path, 4, binding_requests=25, binding_successes=24), state, aws)
    publish(reporter, fake_nft(tmp_path, 4, binding_requests=30, binding_successes=30), state, aws)
    totals = [sum(published(c, live=True)[metrics.BINDING_REQUESTS] for c in aws.calls()[1:]),
              sum(published(c, live=True)[metrics.BINDING_SUCCESSES] for c in aws.calls()[1:])]
    assert totals == [30, 30]


def test_the_disk_gauge_is_the_used_share_of_the_file_system_df_reports(reporter, tmp_path):
    st = os.statvfs(tmp_path)
    used = st.f_blocks - st.f_bfree
    assert reporter.disk_used_percent(str(tmp_path)) == pytest.approx(100 * used / (used + st.f_bavail), abs=0.1)


def test_the_state_left_after_a_publish_is_the_reading_alone(reporter, tmp_path):
    state, aws = tmp_path / "stun-metrics.json", FakeAws(tmp_path / "bin")
    publish(reporter, fake_nft(tmp_path, 4, binding_requests=3), state, aws)
    aws.fail("exit 1")
    run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=5), state, aws)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stun-metrics")) == ["stun-metrics.json"]


@contextlib.contextmanager
def tls_listener(tmp_path: Path, *, days: int = 30, handshake: bool = True) -> Iterator[int]:
    """A TLS listener on loopback presenting a self-signed certificate valid `days` (or, without
    `handshake`, one that accepts and never answers): its port."""
    cert, key = make_self_signed(tmp_path, "stun-infra.test", days=days)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if not handshake:
                held.append(conn)
                continue
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()
        thread.join(5)


def test_the_days_left_on_the_served_certificate_go_out_with_the_gauges(reporter, tmp_path):
    state, aws = tmp_path / "stun-metrics.json", FakeAws(tmp_path / "bin")
    with tls_listener(tmp_path, days=30) as port:
        done = run_reporter(reporter, fake_nft(tmp_path, 4), state, aws, "--tls-address", "127.0.0.1",
                            "--tls-port", str(port))
    assert done.returncode == 0, done.stderr
    (call,) = aws.calls()
    days = {d["MetricName"]: d for d in call["metric_data"]}[metrics.CERTIFICATE_DAYS_LEFT]
    assert 29 <= days["Value"] <= 30 and days["Unit"] == "None"


def test_the_served_certificate_is_read_from_the_address_in_the_environment_file(reporter, tmp_path):
    """The unit's EnvironmentFile names the private address (the metrics stage writes it); the
    port is coturn's TLS port, rendered."""
    state, aws = tmp_path / "stun-metrics.json", FakeAws(tmp_path / "bin")
    with tls_listener(tmp_path, days=45) as port:
        done = run_reporter(reporter, fake_nft(tmp_path, 4), state, aws, "--tls-port", str(port),
                            STUN_METRICS_TLS_ADDRESS="127.0.0.1")
    assert done.returncode == 0, done.stderr
    (call,) = aws.calls()
    assert 44 <= {d["MetricName"]: d["Value"] for d in call["metric_data"]}[metrics.CERTIFICATE_DAYS_LEFT] <= 45
    assert reporter.TLS_PORT == settings_for().tls.coturn_port


def test_no_certificate_days_when_coturns_tls_listener_refuses(reporter, tmp_path):
    """Nothing listening: the run publishes everything else and no certificate datum (the
    alarm then treats the minute as missing)."""
    state, aws = tmp_path / "stun-metrics.json", FakeAws(tmp_path / "bin")
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    done = run_reporter(reporter, fake_nft(tmp_path, 4), state, aws, "--tls-address", "127.0.0.1",
                        "--tls-port", str(port))
    assert done.returncode == 0, done.stderr
    (call,) = aws.calls()
    assert metrics.CERTIFICATE_DAYS_LEFT not in {d["MetricName"] for d in call["metric_data"]}
    assert metrics.HEARTBEAT in {d["MetricName"] for d in call["metric_data"]}


def test_a_tls_listener_that_never_answers_is_given_up_within_the_timeout(reporter, tmp_path):
    with tls_listener(tmp_path, handshake=False) as port:
        started = time.monotonic()
        assert reporter.served_certificate("127.0.0.1", port, 0.5) is None
        assert time.monotonic() - started < 3
    assert reporter.CERTIFICATE_TIMEOUT == binding_counters.CERTIFICATE_TIMEOUT_SECONDS


def test_no_certificate_is_read_where_tls_ends_at_the_load_balancer():
    assert binding_counters.reporter_script(settings_for(mode="autoscale", dnsZoneId="Z0123456789ABCDEFGHIJ",
                                                         dnsName="turn.example.com")).count("TLS_PORT = null") == 1
