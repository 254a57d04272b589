"""What an instance of a warm pool ships and does: a pool kept Running waits, installed and
unconfigured, until the group puts the instance in service (IMDS stand-in here; the booted
machine in tests/boot/test_boot_warm_pool.py)."""

from __future__ import annotations

import sys

import pytest

from stun_infra.instance import launch
from stun_infra.instance.services import CONFIGURE_UNIT
from stun_infra.instance.stage import UNIT_DIR
from tests.conftest import configure_script, instance_files
from tests.instance.test_drain_script import RECORDER, calls, load_program, tools  # noqa: F401

RUNNING = {"mode": "autoscale", "warmPool": "Running"}


def test_a_running_pool_ships_the_await_program_and_its_unit():
    files = instance_files(**RUNNING)
    assert files[launch.AWAIT_PATH].startswith("#!/usr/bin/python3\n")
    assert f"ExecStart={launch.AWAIT_PATH}\n" in files[f"{UNIT_DIR}/{launch.AWAIT_UNIT}"]


@pytest.mark.parametrize("config", [{"mode": "autoscale"}, {"mode": "autoscale", "warmPool": "Stopped"}])
def test_a_stopped_pool_or_none_ships_no_await_program(config):
    assert launch.AWAIT_PATH not in instance_files(**config)
    assert launch.AWAIT_UNIT not in configure_script(**config)


def test_the_await_unit_is_started_in_the_pool_not_enabled_for_every_boot():
    script = configure_script(**RUNNING)
    warmed = script[script.index("  Warmed:*)"):script.index("    ;;")]
    assert f"systemctl start --no-block {launch.AWAIT_UNIT}\n" in warmed
    assert f"enable {launch.AWAIT_UNIT}" not in script


def test_the_await_program_configures_once_the_group_puts_the_instance_in_service(tools, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    (tools / "systemctl").write_text(RECORDER.format(python=sys.executable))
    (tools / "systemctl").chmod(0o755)
    program = load_program(tmp_path / "await_service.py", instance_files(**RUNNING)[launch.AWAIT_PATH])
    states = iter([OSError("metadata service down"), "Warmed:Running", "Pending", "InService"])

    def imds(path):
        assert path == "autoscaling/target-lifecycle-state"
        state = next(states)
        if isinstance(state, Exception):
            raise state
        return state
    monkeypatch.setattr(program, "imds", imds)
    monkeypatch.setattr(program.time, "sleep", lambda s: None)  # the module's own time; restored after
    with pytest.raises(SystemExit) as done:
        program.main()
    assert done.value.code == 0
    assert calls(tools) == [["systemctl", "restart", "--no-block", CONFIGURE_UNIT]]
    assert next(states, "all read") == "all read"


def test_a_second_trip_out_of_a_running_pool_configures_again(tools, tmp_path, monkeypatch):  # noqa: F811
    """After a return to the pool (reuse on scale-in) the oneshot configure unit is still active from
    the first trip: `start` would do nothing and the launching action would never be completed."""
    (tools / "systemctl").write_text(RECORDER.format(python=sys.executable))
    (tools / "systemctl").chmod(0o755)
    program = load_program(tmp_path / "await_service2.py", instance_files(**RUNNING)[launch.AWAIT_PATH])
    monkeypatch.setattr(program, "imds", lambda path: "InService")
    for _trip in range(2):
        with pytest.raises(SystemExit):
            program.main()
    assert [c[1] for c in calls(tools)] == ["restart", "restart"]
