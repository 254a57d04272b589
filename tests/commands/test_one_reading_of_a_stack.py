"""`plan`, `render` and `local` read a stack the same way (PULUMI_CONFIG, the stack file, --set)
and so never disagree about what it is; a stack file Pulumi would refuse is refused by all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.commands.conftest import assert_one_line_error, cli

COMMANDS = {"plan": ["plan"], "render": ["render", "--out", "/nonexistent-20a/out"],
            "local": ["local", "--check", "--no-install"]}


@pytest.fixture
def stack_file():
    """A throwaway Pulumi.<stack>.yaml in the project (where the commands read it), removed after."""
    stack = f"twice{os.getpid()}"
    path = Path(__file__).resolve().parents[2] / f"Pulumi.{stack}.yaml"
    yield stack, path
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_stack_file_that_names_a_key_twice_is_refused(stack_file, command):
    stack, path = stack_file
    path.write_text("config:\n  aws:region: eu-west-3\n  stun-infra:mode: static\n  stun-infra:mode: autoscale\n")
    assert_one_line_error(cli(*COMMANDS[command], "--stack", stack, timeout=60))
    result = cli(*COMMANDS[command], "--stack", stack, timeout=60)
    assert (f"{path.name}: line 4: stun-infra:mode is given twice; Pulumi refuses a stack file that names a key "
            "twice: keep one") in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_reads_pulumi_config(command):
    """A key the stack file does not set, given in PULUMI_CONFIG, is seen (and refused) by all three."""
    env = {**os.environ, "PULUMI_CONFIG": json.dumps({"stun-infra:realm": "not a realm"})}
    result = cli(*COMMANDS[command], env=env, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert 'stun-infra:realm: got "not a realm", must be 1-127 characters' in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_malformed_pulumi_config_is_one_error_for_every_command(command):
    env = {**os.environ, "PULUMI_CONFIG": "{not json"}
    result = cli(*COMMANDS[command], env=env, timeout=60)
    assert_one_line_error(result)
    assert "PULUMI_CONFIG: must be a JSON object" in result.stderr
