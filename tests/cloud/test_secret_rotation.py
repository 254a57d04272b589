"""A TURN secret rotation under mocks: `turnSecret` and `turnSecretPrevious` become
Parameter Store parameters, apps find the current one in the outputs with the policy to
read it, and the previous one exists before the current one changes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import inputs_of, program

PARAMETER = "aws:ssm/parameter:Parameter"
CURRENT = "current-0123456789abcdefghijKLMNOPQRSTuvwx"
PREVIOUS = "previous-ABCDEFGHIJklmnopqrst0123456789yz"
ROTATING = dict(turnSecret=CURRENT, turnSecretPrevious=PREVIOUS, turnSecretRotatedAt="2026-12-05T00:00:00Z",
                secret_keys=("turnSecret", "turnSecretPrevious"))


@pytest.fixture(scope="module")
def rotating_run():
    return program(**ROTATING)


def values(run) -> dict[str, str]:
    return {p["name"]: p.get("value") for p in inputs_of(run, PARAMETER)}


def test_outside_a_rotation_there_is_no_previous_parameter(static_run):
    assert "/stun-infra/test/turn-shared-secret-previous" not in values(static_run)


def test_during_a_rotation_each_secret_has_its_secure_string_parameter(rotating_run):
    params = {p["name"]: p for p in inputs_of(rotating_run, PARAMETER)}
    assert params["/stun-infra/test/turn-shared-secret"]["value"] == CURRENT
    assert params["/stun-infra/test/turn-shared-secret-previous"]["value"] == PREVIOUS
    assert params["/stun-infra/test/turn-shared-secret-previous"]["type"] == "SecureString"
    previous = rotating_run.named(PARAMETER, "stun-infra-test-turn-secret-previous")
    assert "value" in previous.secret_inputs


def test_the_current_secret_changes_only_once_the_previous_one_exists(rotating_run):
    previous = rotating_run.named(PARAMETER, "stun-infra-test-turn-secret-previous")
    current = rotating_run.named(PARAMETER, "stun-infra-test-turn-secret")
    assert previous.urn in current.dependencies


def test_credentials_sign_with_the_current_secret(rotating_run):
    assert rotating_run.outputs["turn_shared_secret"] == CURRENT
    assert "turn_shared_secret" in rotating_run.secret_outputs


def test_apps_find_the_current_secret_by_its_parameter_name(rotating_run, static_run):
    for run in (rotating_run, static_run):
        assert run.outputs["turn_secret_parameter"] == "/stun-infra/test/turn-shared-secret"


def test_the_app_policy_reads_the_current_secret_and_nothing_else(rotating_run):
    current = rotating_run.named(PARAMETER, "stun-infra-test-turn-secret")
    policy = json.loads(rotating_run.outputs["turn_secret_app_policy"])
    assert policy["Statement"] == [{"Sid": "ReadCurrentTurnSecret", "Effect": "Allow",
                                    "Action": ["ssm:GetParameter"], "Resource": [current.state["arn"]]}]


def test_no_secret_value_appears_in_any_resource_input_but_its_parameter(rotating_run):
    holders = {r.name for r in rotating_run.registrations
               if CURRENT in json.dumps(r.inputs) or PREVIOUS in json.dumps(r.inputs)}
    assert holders == {"stun-infra-test-turn-secret", "stun-infra-test-turn-secret-previous"}


def test_stun_only_stacks_export_no_secret_parameter(stun_only_run):
    assert "turn_secret_parameter" not in stun_only_run.outputs
    assert "turn_secret_app_policy" not in stun_only_run.outputs


def instance_policy(run) -> dict:
    (policy,) = [r.inputs for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "stun-infra-test-policy"]
    return json.loads(policy["policy"])


@pytest.mark.parametrize("run_name", ["static_run", "rotating_run"])
def test_instances_may_read_the_current_and_previous_secret_in_one_call(run_name, request):
    run = request.getfixturevalue(run_name)
    current = run.named(PARAMETER, "stun-infra-test-turn-secret").state["arn"]
    (sync,) = [s for s in instance_policy(run)["Statement"] if s["Sid"] == "SyncTurnSecrets"]
    assert sync["Action"] == ["ssm:GetParameters"]
    assert sync["Resource"] == [current, current + "-previous"]
    previous = [r.state["arn"] for r in run.of_type(PARAMETER) if r.name.endswith("-previous")]
    assert previous in ([], [current + "-previous"])


def test_a_stun_only_instance_reads_no_turn_secret(stun_only_run):
    assert "SyncTurnSecrets" not in {s["Sid"] for s in instance_policy(stun_only_run)["Statement"]}


# -- a rotation step reaches running instances without replacing them --------------------------

LAUNCH_TEMPLATE, INSTANCE = "aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"
OTHER = "other-ZYXWVUTSRQponmlkjihg9876543210abcdef"


def what_instances_boot(run) -> list:
    """Everything an instance boots from: the launch template's and each static instance's inputs
    (in a stable order: resources register concurrently)."""
    return sorted(json.dumps(r.inputs, sort_keys=True, default=str)
                  for r in run.of_type(LAUNCH_TEMPLATE) + run.of_type(INSTANCE))


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_no_rotation_step_changes_what_instances_boot_from(mode):
    steps = [dict(turnSecret=CURRENT, secret_keys=("turnSecret",)),
             dict(ROTATING, turnSecret=OTHER, turnSecretPrevious=CURRENT),
             dict(turnSecret=OTHER, secret_keys=("turnSecret",))]
    booted = [what_instances_boot(program(mode=mode, **step)) for step in steps]
    assert booted[0] and booted[0] == booted[1] == booted[2]
