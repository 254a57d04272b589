"""Fixtures for the metrics tests: the real nftables counters and the real coturn, in a
network namespace the test creates, and the reporter run exactly as on an instance.

The namespace and coturn come from tests/support (NetNs, running_coturn); this adds the
counting table and a way to run the rendered reporter once, with a fake `aws` first on
its PATH (FakeAws: records its argv and the metric-data file, can be told to fail), so
what the reporter would publish is checked datum by datum and nothing leaves the machine.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stun_infra.instance import binding_counters, metrics
from stun_infra.settings import Settings
from tests.support.coturn import CoturnServer, require_coturn, running_coturn, settings_for
from tests.support.netns import SERVER_IPV6, NetNs

REPORTER_TIMEOUT = 20.0


def require_nft() -> None:
    require_coturn()
    if not shutil.which("nft"):
        import os
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the metrics tests: nftables is not installed (no nft)")
        pytest.skip("nftables is not installed (no nft)")


def load_ruleset(ns: NetNs, settings: Settings, workdir: Path) -> Path:
    """Write the rendered ruleset and load it in `ns`, as stun-counters.service does."""
    path = workdir / "stun-counters.nft"
    path.write_text(binding_counters.nft_ruleset(settings))
    subprocess.run(["ip", "netns", "exec", ns.name, "nft", "-f", str(path)], check=True,
                   capture_output=True, timeout=10)
    return path


REGION = "eu-west-3"
NAMESPACE = metrics.namespace("test")
INSTANCE_ID = "i-0fa4e1c2b3d4e5f60"

FAKE_AWS = """#!{python}
# A stand-in for the AWS CLI: records its argv and the --metric-data file's JSON, then
# exits 0, or as the file `fail` next to it says: `exit N` (a CLI error) or `hang`.
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
call = {{"argv": sys.argv[1:], "aws_pager": os.environ.get("AWS_PAGER")}}
args = sys.argv[1:]
if "--metric-data" in args and args[args.index("--metric-data") + 1].startswith("file://"):
    with open(args[args.index("--metric-data") + 1][len("file://"):]) as f:
        call["metric_data"] = json.load(f)
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps(call) + "\\n")
try:
    with open(os.path.join(here, "fail")) as f:
        mode = f.read().split()
except FileNotFoundError:
    mode = []
if mode[:1] == ["hang"]:
    time.sleep(3600)
if mode[:1] == ["exit"]:
    print("", file=sys.stderr)
    print("An error occurred (Throttling) when calling the PutMetricData operation: Rate exceeded",
          file=sys.stderr)
    sys.exit(int(mode[1]))
"""


class FakeAws:
    """`aws` in its own directory: put `dir` first on PATH."""

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        script = directory / "aws"
        script.write_text(FAKE_AWS.format(python=sys.executable))
        script.chmod(0o755)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.dir}{os.pathsep}{os.environ.get('PATH', '')}", **extra}

    def fail(self, how: str | None) -> None:
        """"exit 255", "hang", or None (succeed)."""
        if how is None:
            (self.dir / "fail").unlink(missing_ok=True)
        else:
            (self.dir / "fail").write_text(how)

    def calls(self) -> list[dict]:
        log = self.dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def published(call: dict, *, region: str = REGION, namespace: str = NAMESPACE,
              instance_id: str = INSTANCE_ID, live: bool = False, counters: bool = True) -> dict[str, int]:
    """metric -> value of one `aws cloudwatch put-metric-data` call, after checking the call
    exactly: the command, region and namespace, and for every counter metric (and, when
    `live`, the live sessions) two datums with the same value, timestamp and unit: one per
    instance (InstanceId), one with no dimension (the fleet series). The gauges every run
    sends are checked (heartbeat 1, disk used 0-100 percent) and left out of the result;
    `counters=False`: a call that carried the gauges alone."""
    argv = call["argv"]
    assert argv[:7] == ["cloudwatch", "put-metric-data", "--region", region, "--namespace", namespace,
                        "--metric-data"] and len(argv) == 8 and argv[7].startswith("file://"), argv
    assert call["aws_pager"] == ""  # never waits on a pager
    data = call["metric_data"]
    values = {d["MetricName"]: d["Value"] for d in data}
    certificate = values.pop(metrics.CERTIFICATE_DAYS_LEFT, None)  # only where a certificate is found
    assert set(values) == {*(metrics.COUNTER_METRICS if counters else ()), *metrics.GAUGE_UNITS,
                           *([metrics.LIVE_SESSIONS] if live else [])} - {metrics.CERTIFICATE_DAYS_LEFT}, data
    disk = values.pop(metrics.ROOT_DISK_USED)
    assert type(disk) in (int, float) and 0 <= disk <= 100, data
    assert values.pop(metrics.HEARTBEAT) == 1, data
    assert all(type(v) is int and v >= 0 for v in values.values()), data
    stamp = data[0]["Timestamp"]
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 300, stamp
    expected = []
    gauges = {metrics.ROOT_DISK_USED: disk, metrics.HEARTBEAT: 1,
              **({} if certificate is None else {metrics.CERTIFICATE_DAYS_LEFT: certificate})}
    for metric, value in {**values, **gauges}.items():
        unit = metrics.GAUGE_UNITS.get(metric, "Count")
        expected.append({"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                         "Timestamp": stamp, "Value": value, "Unit": unit})
        expected.append({"MetricName": metric, "Timestamp": stamp, "Value": value, "Unit": unit})
    assert sorted(data, key=json.dumps) == sorted(expected, key=json.dumps)
    return values


def reporter_env(aws: FakeAws) -> dict[str, str]:
    """The environment the unit gives the reporter (its EnvironmentFile), with the fake aws."""
    return aws.env(**dict(zip(binding_counters.METRICS_ENV, (REGION, NAMESPACE, INSTANCE_ID))))


@dataclass
class Reporter:
    """The rendered reporter script, run in this (host) namespace with nft run inside `ns`."""

    ns: NetNs
    script: Path
    ruleset: Path
    state: Path
    aws: FakeAws
    coturn_pid: int
    live: int | None = None  # LiveSessions of the last run

    def run(self) -> tuple[dict[str, int], str]:
        """One run, as the timer starts it: (counter metric -> value it published, its stdout);
        the live sessions it published beside them are kept in `live`."""
        before = len(self.aws.calls())
        done = self.start()
        assert done.returncode == 0, done.stderr
        calls = self.aws.calls()[before:]
        assert len(calls) == 1, calls
        values = published(calls[0], live=True)
        self.live = values.pop(metrics.LIVE_SESSIONS)
        return values, done.stdout

    def start(self) -> subprocess.CompletedProcess:
        # Live sessions are counted in coturn's namespace (/proc/PID/net) among the sockets of
        # the user it runs as here (root), as on an instance among turnserver's.
        return subprocess.run(
            [sys.executable, str(self.script), "--nft", f"ip netns exec {self.ns.name} nft",
             "--ruleset", str(self.ruleset), "--state", str(self.state),
             "--proc-net", f"/proc/{self.coturn_pid}/net", "--relay-user", str(os.geteuid())],
            env=reporter_env(self.aws), capture_output=True, text=True, timeout=REPORTER_TIMEOUT)

    def nft(self, *args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.ns.name, "nft", *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout


@pytest.fixture(scope="module")
def metrics_ns() -> Iterator[NetNs]:
    require_nft()
    with NetNs(prefix="stun-metrics") as ns:
        yield ns


@pytest.fixture(scope="module")
def counted_server(metrics_ns: NetNs, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[CoturnServer, Reporter]]:
    """coturn with exactly the rendered config, the counting table loaded first, and a reporter."""
    workdir = tmp_path_factory.mktemp("counted")
    settings = settings_for()
    ruleset = load_ruleset(metrics_ns, settings, workdir)
    script = workdir / "stun-metrics-reporter"
    script.write_text(binding_counters.reporter_script(settings))
    # The instance's IPv6 address too (dual stack): bindings over IPv6 are counted apart.
    with running_coturn(metrics_ns, workdir, settings, ipv6=SERVER_IPV6) as server:
        yield server, Reporter(metrics_ns, script, ruleset, workdir / "state" / "stun-metrics.json",
                               FakeAws(workdir / "bin"), server.process.pid)
