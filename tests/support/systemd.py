"""The host's own systemd tools read our rendered units (no root, no booted system):
`systemd-analyze verify` for every unit's syntax and settings, `calendar` for a timer's times."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path

import pytest



def require_systemd_analyze() -> None:
    if not shutil.which("systemd-analyze"):
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (CI must run this test): apt-get install systemd")
        pytest.skip("systemd-analyze is not installed")


def verify_units(directory: Path, units: dict[str, str]) -> str:
    """Write the units into `directory` and return what `systemd-analyze verify` said ('' is clean)."""
    require_systemd_analyze()
    for name, text in units.items():
        (directory / name).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(directory / n) for n in units)],
                          capture_output=True, text=True, timeout=60)
    return (done.stderr + done.stdout).strip() + ("" if done.returncode == 0 else f"\nexit {done.returncode}")


def calendar_elapses(spec: str, count: int) -> list[datetime.datetime]:
    """The next `count` times systemd fires an `OnCalendar=spec` timer, in UTC."""
    require_systemd_analyze()
    done = subprocess.run(["systemd-analyze", "calendar", f"--iterations={count}", spec],
                          capture_output=True, text=True, timeout=30, env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    return [datetime.datetime.strptime(line.split(": ", 1)[1].strip(), "%a %Y-%m-%d %H:%M:%S %Z")
            for line in done.stdout.splitlines() if line.strip().startswith(("Next elapse:", "Iter. #"))]



def timespan_seconds(span: str) -> float:
    """A time span as systemd prints it (`systemctl show`: "1min 30s", "infinity", "0") in
    seconds, read by systemd's own parser (`systemd-analyze timespan`)."""
    require_systemd_analyze()
    if span == "infinity":
        return float("inf")
    done = subprocess.run(["systemd-analyze", "timespan", span], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    micro = next(line for line in done.stdout.splitlines() if line.strip().startswith(("μs:", "us:")))
    return int(micro.split(":", 1)[1]) / 1e6
