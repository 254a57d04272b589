"""What an instance of a warm pool ships and does: a pool kept Running waits, installed and
unconfigured, until the group puts the instance in service (IMDS stand-in here; what it asks systemd, on the
booted machine in tests/boot/test_boot_warm_pool.py)."""

from __future__ import annotations

import pytest

from stun_infra.instance import launch
from stun_infra.instance.stage import UNIT_DIR
from tests.conftest import configure_script, instance_files
from tests.instance.test_drain_script import load_program

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


def test_the_await_program_waits_until_the_group_puts_the_instance_in_service(tmp_path, monkeypatch):
    """Its wait, with IMDS stood in for; what it then asks systemd (restart configure) runs in
    tests/boot/test_boot_warm_pool.py."""
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
    program.wait_in_service()
    assert next(states, "all read") == "all read"
