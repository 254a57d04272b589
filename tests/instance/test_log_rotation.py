"""coturn's log on disk is bounded whatever writes it: logrotate (the real one, on the
rendered config) rotates it by size between daily rotations, and its timer checks every
minute. A flood of refused requests (bench/log_flood.py) writes megabytes a second: the
daily logrotate.timer alone let it fill the disk between two runs."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from stun_infra.instance import coturn, flood_limits

from tests.conftest import configure_script, instance_files
from tests.support.systemd import verify_units

MB = 1024 * 1024


def logrotate(config: Path, state: Path) -> None:
    if not shutil.which("logrotate"):
        if os.environ.get("CI") == "true":
            pytest.fail("logrotate is missing (CI must run this test): apt-get install logrotate")
        pytest.skip("logrotate is not installed")
    done = subprocess.run(["logrotate", "--state", str(state), str(config)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def rotation_here(log: Path) -> str:
    """The rendered rotation, for this machine's user and group (the instance's do not exist here)."""
    return coturn.log_rotation(str(log), owner=pwd.getpwuid(os.getuid()).pw_name, reader=grp.getgrgid(os.getgid()).gr_name)


def test_a_log_over_its_size_is_rotated_before_the_day_is_over(tmp_path):
    log, config, state = tmp_path / "turnserver.log", tmp_path / "coturn.logrotate", tmp_path / "status"
    config.write_text(rotation_here(log))
    log.write_text("startup\n")
    logrotate(config, state)  # the first run records the file: rotated daily from now on
    assert [p.name for p in tmp_path.glob("turnserver.log*")] == ["turnserver.log"]
    for flood in (1, 2):  # over the size within the same day, twice
        with log.open("wb") as f:
            f.truncate(flood_limits.LOG_MAX_MEGABYTES * MB + flood)
        logrotate(config, state)
        assert log.stat().st_size == 0
    assert (tmp_path / "turnserver.log.1").stat().st_size == flood_limits.LOG_MAX_MEGABYTES * MB + 2
    assert (tmp_path / "turnserver.log.2.gz").exists()  # older ones compressed
    log.write_text("a few lines\n")
    logrotate(config, state)  # under the size, same day: left alone
    assert log.read_text() == "a few lines\n"


def test_the_new_log_is_coturns_and_readable_by_the_cloudwatch_agents_group_alone(tmp_path):
    """Rotation creates the next log at once, as coturn's with the agent's group and mode 0640:
    the agent (an unprivileged user) goes on reading it, nobody else can. On the instance the
    owner is coturn's user and the group the agent's (checked on a booted machine in tests/boot)."""
    if os.geteuid() != 0:
        pytest.skip("logrotate's create with another group needs root")
    reader = "nogroup" if "nogroup" in {g.gr_name for g in grp.getgrall()} else grp.getgrgid(os.getgid()).gr_name
    log, config, state = tmp_path / "turnserver.log", tmp_path / "coturn.logrotate", tmp_path / "status"
    config.write_text(coturn.log_rotation(str(log), owner="root", reader=reader))
    with log.open("wb") as f:
        f.truncate(flood_limits.LOG_MAX_MEGABYTES * MB + 1)
    logrotate(config, state)
    created = log.stat()
    assert (created.st_size, oct(created.st_mode & 0o777), created.st_uid, grp.getgrgid(created.st_gid).gr_name) == (
        0, "0o640", 0, reader)
    assert f"create 0640 {coturn.RELAY_USER} {coturn.LOG_READER}" in coturn.log_rotation(coturn.INSTANCE_PATHS.log_file)
    assert coturn.LOG_READER == "cwagent"


def test_the_rotation_keeps_a_bounded_number_of_files(tmp_path):
    log, config, state = tmp_path / "turnserver.log", tmp_path / "coturn.logrotate", tmp_path / "status"
    config.write_text(rotation_here(log))
    for _ in range(flood_limits.LOG_KEPT + 3):
        with log.open("wb") as f:
            f.truncate(flood_limits.LOG_MAX_MEGABYTES * MB + 1)
        logrotate(config, state)
    assert len(list(tmp_path.glob("turnserver.log.*"))) == flood_limits.LOG_KEPT


def test_the_log_size_has_its_own_timer_and_one_runner(tmp_path):
    """Its timer's schedule and command as systemd reads them: tests/boot/test_boot_script.py."""
    files = instance_files()
    units = {name: files[f"/lib/systemd/system/{name}"] for name in coturn.LOGROTATE_UNITS}
    assert verify_units(tmp_path, units) == ""
    # its one runner: not in /etc/logrotate.d, where the daily logrotate.timer would rotate it too
    assert coturn.LOGROTATE_PATH in files and not [p for p in files if p.startswith("/etc/logrotate.d/")]
    assert "\nsystemctl enable stun-coturn-logrotate.timer\n" in configure_script()
