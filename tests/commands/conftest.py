"""The client-side commands run as users run them: `python -m stun_infra ...` subprocesses.

Every server listens on loopback (or inside the coturn tests' network namespace) on
ports picked free here, every wait is bounded, and every process is stopped by pid.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.coturn import require_coturn

CLI = [sys.executable, "-m", "stun_infra"]
LOOPBACK = "127.0.0.1"
START_DEADLINE = 40.0  # seconds for `local` to start coturn, probe it and print iceServers
RUN_DEADLINE = 60.0    # seconds any one CLI run may take


def cli(*args: str, stdin: str | None = None, timeout: float = RUN_DEADLINE,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `stun-infra ARGS` to completion (bounded); stdin is empty unless given."""
    return subprocess.run([*CLI, *args], input=stdin or "", capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=Path(__file__).resolve().parents[2])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Non-zero exit, exactly one `error: ...` line containing every fragment, no traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports() -> tuple[int, int]:
    """(stun, tls) ports free on loopback for UDP and TCP, away from coturn's defaults."""
    for _ in range(200):
        stun = random.randrange(20000, 40000, 2)
        if all(_free(p, k) for p in (stun, stun + 1) for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM)):
            return stun, stun + 1
    raise RuntimeError("no free loopback ports found")


def port_settings(stun: int, tls: int) -> list[str]:
    return ["--set", f"stunPort={stun}", "--set", f"tlsPorts=[{tls}]"]


@dataclass
class LocalRun:
    """`stun-infra local` serving in the background."""

    process: subprocess.Popen[str]
    stun_port: int
    tls_port: int
    ice: dict[str, Any]
    tmpdir: Path
    stderr_path: Path

    def stop(self) -> int:
        """SIGTERM by pid (the command's documented way to stop, like Ctrl-C), bounded."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def turnserver_pid(self) -> int:
        pidfiles = list(self.tmpdir.glob("stun-infra-local-*/turnserver.pid"))
        assert len(pidfiles) == 1, pidfiles
        return int(pidfiles[0].read_text().split()[0])


def start_local(tmp: Path, *extra: str) -> LocalRun:
    """Start `local` on free loopback ports; return once it printed its iceServers block."""
    stun, tls = free_ports()
    tmpdir = tmp / "tmp"
    tmpdir.mkdir()
    stderr_path = tmp / "local.stderr"
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    with stderr_path.open("w") as err:
        process = subprocess.Popen([*CLI, "local", "--no-install", *port_settings(stun, tls), *extra],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=env, cwd=Path(__file__).resolve().parents[2])
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    run = LocalRun(process, stun, tls, {}, tmpdir, stderr_path)
    text = ""
    deadline = time.monotonic() + START_DEADLINE
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"`local` printed no iceServers within {START_DEADLINE}s:\n"
                                     f"{stderr_path.read_text()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"`local` exited ({process.wait(timeout=5)}) before printing iceServers:\n"
                                     f"{stderr_path.read_text()}")
            text += line
            if line.rstrip() == "}":
                run.ice = json.loads(text)
                return run
    except BaseException:
        run.stop()
        raise


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """`stun-infra local` (TURN on, the dev stack) serving on loopback for the whole module."""
    require_coturn()
    run = start_local(tmp_path_factory.mktemp("local"))
    try:
        yield run
    finally:
        run.stop()
