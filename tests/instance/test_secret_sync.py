"""The instance's TURN secret sync (templates/stun-secret-sync.py.j2) run for real against a
stand-in Parameter Store (`aws ssm get-parameters`) and a real SQLite store with coturn's
schema; coturn itself reading that store: tests/instance/coturn/test_secret_rotation.py."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stun_infra.instance import secret_sync
from stun_infra.settings import APP_SECRET_SETTLE

from tests.support.ssm_standin import SsmStandIn

PARAMETERS = secret_sync.SecretParameters.under("/stun-infra/test")
REALM = "stun-infra.test"
CURRENT, PREVIOUS = "current-" + "c" * 40, "previous-" + "p" * 40


class Box:
    def __init__(self, tmp_path: Path):
        self.ssm = SsmStandIn(tmp_path)
        self.database = tmp_path / "turndb"
        self.program = tmp_path / "stun-secret-sync"
        self.program.write_text(secret_sync.script(PARAMETERS, REALM, database=str(self.database), first_delay=0))

    def sync(self):
        return self.ssm.run(self.program, "--region", "eu-west-3")

    def stored(self, realm: str = REALM) -> set[str]:
        with sqlite3.connect(self.database) as db:
            return {row[0] for row in db.execute("SELECT value FROM turn_secret WHERE realm = ?", (realm,))}


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def test_outside_a_rotation_the_store_holds_the_current_secret_alone(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    assert box.sync().returncode == 0
    assert box.stored() == {CURRENT}


def test_during_a_rotation_the_store_holds_current_and_previous(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.ssm.put(PARAMETERS.previous, PREVIOUS)
    assert box.sync().returncode == 0
    assert box.stored() == {CURRENT, PREVIOUS}


def test_the_previous_secret_leaves_the_store_once_its_parameter_is_deleted(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.ssm.put(PARAMETERS.previous, PREVIOUS)
    box.sync()
    box.ssm.delete(PARAMETERS.previous)
    assert box.sync().returncode == 0
    assert box.stored() == {CURRENT}


def test_both_parameters_are_read_in_one_call(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    [call] = box.ssm.calls()
    assert call[:2] == ["ssm", "get-parameters"]
    assert call[call.index("--names") + 1:call.index("--names") + 3] == [PARAMETERS.current, PARAMETERS.previous]
    assert "--with-decryption" in call and call[call.index("--region") + 1] == "eu-west-3"


def test_a_failed_read_is_retried(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.ssm.fail_next(secret_sync.ATTEMPTS - 1)
    done = box.sync()
    assert done.returncode == 0
    assert len(box.ssm.calls()) == secret_sync.ATTEMPTS
    assert box.stored() == {CURRENT}


def test_reads_failing_every_attempt_leave_the_store_as_it_was(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    box.ssm.put(PARAMETERS.current, "rotated-" + "n" * 40)
    box.ssm.fail_next(secret_sync.ATTEMPTS)
    done = box.sync()
    assert done.returncode == 1
    assert len(box.ssm.calls()) == 1 + secret_sync.ATTEMPTS  # bounded: no endless retry
    assert f"gave up after {secret_sync.ATTEMPTS} attempts" in done.stdout
    assert box.stored() == {CURRENT}


def test_a_missing_current_secret_never_empties_the_store(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    box.ssm.delete(PARAMETERS.current)
    done = box.sync()
    assert done.returncode == 1
    assert f"{PARAMETERS.current} does not exist" in done.stdout
    assert box.stored() == {CURRENT}


@pytest.mark.parametrize("value", ["two\nlines", "has space", "x" * (secret_sync.MAX_SECRET + 1)],
                         ids=["line-break", "space", "too-long"])
def test_a_value_coturn_cannot_take_is_refused_and_the_store_kept(box, value):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    box.ssm.put(PARAMETERS.previous, value)
    assert box.sync().returncode == 1
    assert box.stored() == {CURRENT}


def test_no_secret_value_is_ever_printed(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.ssm.put(PARAMETERS.previous, PREVIOUS)
    box.ssm.fail_next(1)
    done = box.sync()
    box.ssm.delete(PARAMETERS.current)
    failed = box.sync()
    printed = done.stdout + done.stderr + failed.stdout + failed.stderr
    assert "2 secret(s) accepted" in printed
    assert CURRENT not in printed and PREVIOUS not in printed


def test_other_realms_secrets_are_left_alone(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    with sqlite3.connect(box.database) as db:
        db.execute("INSERT INTO turn_secret (realm, value) VALUES ('other.realm', 'theirs')")
    box.ssm.put(PARAMETERS.current, "rotated-" + "n" * 40)
    box.sync()
    assert box.stored("other.realm") == {"theirs"}


def test_the_region_comes_from_the_timers_environment_file_without_an_argument(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    done = subprocess.run([sys.executable, str(box.program)], capture_output=True, text=True, timeout=60,
                          env={**box.ssm.environment(), "STUN_SECRET_SYNC_REGION": "eu-north-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    [call] = box.ssm.calls()
    assert call[call.index("--region") + 1] == "eu-north-1"


def test_an_unchanged_store_is_reported_as_such(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    assert "(0 added, 0 retired)" in box.sync().stdout


def test_the_timer_runs_the_sync_every_interval_with_the_region_from_its_file():
    units = secret_sync.units()
    timer, service = units["stun-secret-sync.timer"], units["stun-secret-sync.service"]
    assert f"OnUnitActiveSec={secret_sync.SYNC_INTERVAL_SECONDS}s" in timer.splitlines()
    assert f"EnvironmentFile={secret_sync.ENV_PATH}" in service.splitlines()
    assert f"ExecStart={secret_sync.SCRIPT_PATH}" in service.splitlines()


def test_the_pickup_bound_covers_two_intervals_and_a_run_that_fails_every_read():
    worst_run = secret_sync.ATTEMPTS * secret_sync.AWS_TIMEOUT_SECONDS + 2 + 4 + 8
    assert secret_sync.PICKUP_SECONDS == 2 * secret_sync.SYNC_INTERVAL_SECONDS + worst_run


def test_apps_wait_for_a_new_secret_longer_than_the_instances_take_to_accept_it():
    assert APP_SECRET_SETTLE.total_seconds() >= secret_sync.PICKUP_SECONDS


def test_secrets_from_stdin_fill_the_store_without_parameter_store(tmp_path):
    database = tmp_path / "turndb"
    secret_sync.fill_store(str(database), REALM, CURRENT, PREVIOUS)
    with sqlite3.connect(database) as db:
        assert {r[0] for r in db.execute("SELECT value FROM turn_secret WHERE realm = ?", (REALM,))} == {CURRENT, PREVIOUS}


def test_a_secret_from_stdin_that_coturn_cannot_take_is_refused_without_being_shown(tmp_path):
    with pytest.raises(ValueError) as caught:
        secret_sync.fill_store(str(tmp_path / "turndb"), REALM, "two words")
    assert "was not written" in str(caught.value) and "two words" not in str(caught.value)


def test_the_store_uses_a_write_ahead_log_so_coturn_reads_while_it_is_written(box):
    box.ssm.put(PARAMETERS.current, CURRENT)
    box.sync()
    with sqlite3.connect(box.database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_timer_runs_the_sync_as_coturns_user():
    service = secret_sync.units()["stun-secret-sync.service"].splitlines()
    assert "User=turnserver" in service and "Group=turnserver" in service
