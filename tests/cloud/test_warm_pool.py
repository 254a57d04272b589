"""The warm pool under mocks: the group's pool as configured, and the lifecycle hooks the
group has from its creation (a pool stops instances launched before a hook exists)."""

from __future__ import annotations

import json

import pytest

from stun_infra.cloud.components.warm_pool import SOURCE
from stun_infra.instance import launch
from tests.conftest import program

GROUP = "aws:autoscaling/group:Group"
FUNCTION = "aws:lambda/function:Function"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
POLICY = "aws:iam/rolePolicy:RolePolicy"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
STOPPED = {"mode": "autoscale", "warmPool": "Stopped"}


@pytest.fixture(scope="module")
def pooled():
    return program(**STOPPED, warmPoolMinSize=2)


def test_a_stack_without_warm_pool_gives_its_group_none():
    assert "warmPool" not in program(mode="autoscale").one(GROUP).inputs


def test_the_group_keeps_the_configured_warm_pool(pooled):
    assert pooled.one(GROUP).inputs["warmPool"] == {
        "poolState": "Stopped", "minSize": 2, "maxGroupPreparedCapacity": -1,
        "instanceReusePolicy": {"reuseOnScaleIn": False}}


def test_the_pool_takes_its_prepared_capacity_and_reuse_from_the_config():
    pool = program(**STOPPED, warmPoolMaxPreparedCapacity=5, warmPoolReuseOnScaleIn="true").one(GROUP).inputs
    assert pool["warmPool"]["maxGroupPreparedCapacity"] == 5
    assert pool["warmPool"]["instanceReusePolicy"] == {"reuseOnScaleIn": True}


@pytest.mark.parametrize("config", [{"mode": "autoscale"}, STOPPED], ids=["no-pool", "pool"])
def test_the_group_is_created_with_the_same_lifecycle_hooks_its_hook_resources_keep(config):
    run = program(**config)
    initial = {h["name"]: h for h in run.one(GROUP).inputs["initialLifecycleHooks"]}
    kept = {r.inputs["name"]: r.inputs for r in run.of_type(HOOK)}
    assert set(initial) == set(kept) == {"stun-infra-test-drain", "stun-infra-test-launch"}
    for name, hook in initial.items():
        assert hook == {k: kept[name][k] for k in ("name", "lifecycleTransition", "heartbeatTimeout", "defaultResult")}


def test_an_existing_group_is_not_changed_by_its_initial_hooks():
    assert "initialLifecycleHooks" in program(mode="autoscale").one(GROUP).ignore_changes


def test_the_launching_hook_keeps_its_install_timeout_with_reuse():
    # An instance returning to the pool waits in the termination hook, not this one.
    run = program(**STOPPED, warmPoolReuseOnScaleIn="true", drainSeconds=3600)
    assert run.named(HOOK, "stun-infra-test-launch").inputs["heartbeatTimeout"] == launch.HOOK_TIMEOUT_SECONDS


@pytest.mark.parametrize("config", [{"mode": "autoscale"}, STOPPED], ids=["no-pool", "pool"])
def test_a_pool_is_removed_without_waiting_for_its_instances(config):
    # Set without a pool too: turning the pool off removes it with the new inputs.
    assert program(**config).one(GROUP).inputs["forceDeleteWarmPool"] is True


def test_a_stack_without_warm_pool_has_no_pool_terminations_function():
    assert not [r for r in program(mode="autoscale").of_type(FUNCTION) if "pool-terminations" in r.name]


def test_the_pool_terminations_function_runs_on_this_groups_pool_terminations_only(pooled):
    group = pooled.one(GROUP).state
    rule = pooled.named(RULE, "stun-infra-test-pool-terminations-terminating").inputs
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"],
        "detail": {"AutoScalingGroupName": [group["name"]], "Origin": ["WarmPool"]}}
    function = pooled.named(FUNCTION, "stun-infra-test-pool-terminations")
    assert pooled.named(TARGET, "stun-infra-test-pool-terminations-terminating").inputs["arn"] == function.state["arn"]
    assert function.inputs["environment"]["variables"] == {"GROUP_NAME": group["name"]}
    assert list(function.inputs["code"].assets) == ["warm_pool_terminations.py"]
    assert function.inputs["code"].assets["warm_pool_terminations.py"].path == str(SOURCE)


def test_the_pool_terminations_function_may_complete_actions_on_this_group_only(pooled):
    policy = json.loads(pooled.named(POLICY, "stun-infra-test-pool-terminations-policy").inputs["policy"])
    assert policy["Statement"][0] == {"Sid": "CompletePoolTerminations", "Effect": "Allow",
                                      "Action": ["autoscaling:CompleteLifecycleAction"],
                                      "Resource": [pooled.one(GROUP).state["arn"]]}
