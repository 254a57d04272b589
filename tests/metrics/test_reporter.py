"""The rendered reporter's arithmetic and push, without a kernel: `nft` is a stand-in script
printing what `nft -j list table inet stun_infra` prints (format taken from nftables 1.0.6)."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stun_infra import binding_counters, metrics

from .conftest import parse_statsd

METRICS = {c.name: c.metric for c in binding_counters.COUNTERS}


@pytest.fixture(scope="module")
def reporter(tmp_path_factory):
    path = tmp_path_factory.mktemp("reporter") / "stun_metrics_reporter.py"
    path.write_text(binding_counters.reporter_script())
    spec = importlib.util.spec_from_file_location("stun_metrics_reporter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.path = path
    return module


def reading(table: int, boot: str = "boot-a", **packets: int) -> dict:
    return {"table": table, "boot_id": boot, "counters": {n: packets.get(n, 0) for n in METRICS}}


def by_metric(**packets: int) -> dict[str, int]:
    return {METRICS[n]: packets.get(n, 0) for n in METRICS}


def test_reporter_is_standard_library_only(reporter):
    imports = {line.split()[1].split(".")[0] for line in reporter.path.read_text().splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= set(sys.stdlib_module_names), imports


def test_reporter_names_the_contracts_metrics(reporter):
    assert reporter.METRICS == METRICS
    assert set(METRICS.values()) == set(metrics.COUNTER_METRICS)
    assert METRICS["allocate_successes"] == metrics.UDP_ALLOCATIONS == "UdpAllocations"
    assert reporter.STATSD == binding_counters.STATSD_ADDRESS == "127.0.0.1:8125"


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


def test_statsd_payload_is_one_counter_line_per_metric(reporter):
    payload = reporter.statsd_payload(by_metric(binding_requests=3, binding_successes=2,
                                                allocate_successes=1)).decode()
    assert sorted(payload.splitlines()) == sorted(
        [f"{metrics.BINDING_REQUESTS}:3|c", f"{metrics.BINDING_SUCCESSES}:2|c", f"{metrics.BINDING_ERRORS}:0|c",
         f"{metrics.UDP_ALLOCATIONS}:1|c"])


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


def run_reporter(reporter, nft: str, state: Path) -> tuple[dict[str, int], str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(10)
        done = subprocess.run([sys.executable, str(reporter.path), "--nft", nft, "--state", str(state),
                               "--statsd", f"127.0.0.1:{listener.getsockname()[1]}"],
                              capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        return parse_statsd(listener.recvfrom(65536)[0].decode()), done.stdout


def test_runs_push_deltas_and_keep_state_between_runs(reporter, tmp_path):
    state = tmp_path / "lib" / "stun-metrics.json"
    first, _ = run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=10, binding_successes=9), state)
    assert first == by_metric(binding_requests=10, binding_successes=9)
    second, out = run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=25, binding_successes=23,
                                                  binding_errors=1, allocate_successes=3), state)
    assert second == by_metric(binding_requests=15, binding_successes=14, binding_errors=1, allocate_successes=3)
    assert f"{metrics.BINDING_REQUESTS}=15" in out and f"{metrics.UDP_ALLOCATIONS}=3" in out
    saved = json.loads(state.read_text())
    assert saved["table"] == 4 and saved["counters"]["binding_requests"] == 25 and saved["boot_id"]


def test_a_failed_push_keeps_the_previous_state(reporter, tmp_path):
    state = tmp_path / "stun-metrics.json"
    run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=10), state)
    done = subprocess.run([sys.executable, str(reporter.path), "--nft", fake_nft(tmp_path, 4, binding_requests=30),
                           "--state", str(state), "--statsd", "not-an-address:8125"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode != 0
    again, _ = run_reporter(reporter, fake_nft(tmp_path, 4, binding_requests=30), state)
    assert again == by_metric(binding_requests=20)
