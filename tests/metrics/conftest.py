"""Fixtures for the metrics tests: the real nftables counters and the real coturn, in a
network namespace the test creates, and the reporter run exactly as on an instance.

The namespace and coturn come from tests/coturn (NetNs, start_coturn); this adds the
counting table and a way to run the rendered reporter once, with its StatsD push aimed
at a UDP socket the test listens on (127.0.0.1, an ephemeral port).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stun_infra import binding_counters
from stun_infra.settings import Settings
from tests.coturn.conftest import CoturnServer, require_coturn, settings_for, start_coturn
from tests.coturn.netns import NetNs

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


@dataclass
class Reporter:
    """The rendered reporter script, run in this (host) namespace with nft run inside `ns`."""

    ns: NetNs
    script: Path
    ruleset: Path
    state: Path

    def run(self) -> tuple[dict[str, int], str]:
        """One run, as the timer starts it: (metric -> value it pushed, its stdout)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.settimeout(REPORTER_TIMEOUT)
            port = listener.getsockname()[1]
            done = subprocess.run(
                [sys.executable, str(self.script), "--nft", f"ip netns exec {self.ns.name} nft",
                 "--ruleset", str(self.ruleset), "--state", str(self.state), "--statsd", f"127.0.0.1:{port}"],
                capture_output=True, text=True, timeout=REPORTER_TIMEOUT)
            assert done.returncode == 0, done.stderr
            datagram, _ = listener.recvfrom(65536)
        return parse_statsd(datagram.decode()), done.stdout

    def nft(self, *args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.ns.name, "nft", *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout


def parse_statsd(text: str) -> dict[str, int]:
    """`Name:value|c` lines, as the CloudWatch agent's statsd input reads them."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        bucket, rest = line.split(":", 1)
        value, kind = rest.split("|", 1)
        assert kind == "c", f"not a StatsD counter: {line!r}"
        values[bucket] = values.get(bucket, 0) + int(value)
    return values


@pytest.fixture(scope="module")
def metrics_ns() -> Iterator[NetNs]:
    require_nft()
    ns = NetNs(prefix="stun-metrics")
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture(scope="module")
def counted_server(metrics_ns: NetNs, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[CoturnServer, Reporter]]:
    """coturn with exactly the rendered config, the counting table loaded first, and a reporter."""
    workdir = tmp_path_factory.mktemp("counted")
    settings = settings_for()
    ruleset = load_ruleset(metrics_ns, settings, workdir)
    script = workdir / "stun-metrics-reporter"
    script.write_text(binding_counters.reporter_script())
    server = start_coturn(metrics_ns, workdir, settings)
    try:
        yield server, Reporter(metrics_ns, script, ruleset, workdir / "state" / "stun-metrics.json")
    finally:
        server.stop()
