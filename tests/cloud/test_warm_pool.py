"""The warm pool under mocks: the group's pool as configured, and the lifecycle hooks the
group has from its creation (a pool stops instances launched before a hook exists)."""

from __future__ import annotations

import pytest

from stun_infra.instance import drain, launch
from tests.conftest import program, settings

GROUP = "aws:autoscaling/group:Group"
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


def test_with_reuse_the_launching_hook_waits_as_long_as_the_drain():
    config = {**STOPPED, "warmPoolReuseOnScaleIn": "true", "drainSeconds": 3600}
    hooks = {r.inputs["name"]: r.inputs["heartbeatTimeout"] for r in program(**config).of_type(HOOK)}
    assert hooks["stun-infra-test-launch"] == hooks["stun-infra-test-drain"] == drain.hook_timeout(settings(**config))
    assert hooks["stun-infra-test-launch"] <= 7200  # PutLifecycleHook HeartbeatTimeout


def test_without_reuse_the_launching_hook_keeps_its_install_timeout(pooled):
    hook = pooled.named(HOOK, "stun-infra-test-launch").inputs
    assert hook["heartbeatTimeout"] == launch.HOOK_TIMEOUT_SECONDS
