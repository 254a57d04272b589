"""The warm pool's config: AWS's ranges, what AWS or this program cannot do, and values
that would be silently without effect, each refused before any resource exists."""

from __future__ import annotations

import pytest

from stun_infra.settings import load_settings

from .test_settings import only_problem

AUTOSCALE = {"mode": "autoscale"}


def test_the_warm_pool_is_off_by_default():
    s = load_settings(AUTOSCALE, stack="test", region="eu-west-3")
    assert s.warm_pool == "off" and not s.warm_pool_on


@pytest.mark.parametrize("state", ["Stopped", "Running"])
def test_a_pool_state_aws_offers_turns_the_pool_on(state):
    assert load_settings({**AUTOSCALE, "warmPool": state}, stack="test", region="eu-west-3").warm_pool_on


def test_an_unknown_pool_state_is_refused_naming_the_allowed_ones():
    assert only_problem(**AUTOSCALE, warmPool="stopped") == \
        'stun-infra:warmPool: got "stopped", must be "off", "Stopped" or "Running"'


def test_hibernated_is_refused_because_instances_are_launched_without_hibernation():
    message = only_problem(**AUTOSCALE, warmPool="Hibernated")
    assert message.startswith('stun-infra:warmPool: got "Hibernated", which needs hibernation enabled at launch')
    assert 'use "Stopped"' in message


def test_a_warm_pool_in_static_mode_is_refused():
    assert only_problem(warmPool="Stopped") == ("stun-infra:warmPool: is only used in autoscale mode but this stack "
                                                "has mode static; remove it (pulumi config rm stun-infra:warmPool)")


@pytest.mark.parametrize("key,value", [("warmPoolMinSize", "2"), ("warmPoolMaxPreparedCapacity", "6"),
                                       ("warmPoolReuseOnScaleIn", "true")])
def test_a_pool_setting_without_a_pool_is_refused(key, value):
    assert only_problem(**AUTOSCALE, **{key: value}) == (
        f'stun-infra:{key}: is only used with a warm pool but stun-infra:warmPool is "off"; set '
        f'stun-infra:warmPool ("Stopped" or "Running") or remove it (pulumi config rm stun-infra:{key})')


@pytest.mark.parametrize("value", ["-2", "0", "101"])
def test_a_prepared_capacity_outside_awss_range_is_refused(value):
    assert only_problem(**AUTOSCALE, warmPool="Stopped", warmPoolMaxPreparedCapacity=value) == (
        f"stun-infra:warmPoolMaxPreparedCapacity: got \"{value}\", must be -1 (the group's maxSize) or a whole number "
        "from 1 to 100")


@pytest.mark.parametrize("value", ["-1", "101"])
def test_a_minimum_pool_size_outside_0_to_100_is_refused(value):
    assert only_problem(**AUTOSCALE, warmPool="Stopped", warmPoolMinSize=value) == \
        f"stun-infra:warmPoolMinSize: got \"{value}\", must be a whole number from 0 to 100"


def test_a_prepared_capacity_that_leaves_the_pool_always_empty_is_refused():
    message = only_problem(**AUTOSCALE, minSize="2", desiredCapacity="2", warmPool="Stopped",
                           warmPoolMaxPreparedCapacity="2")
    assert message.startswith("stun-infra:warmPoolMaxPreparedCapacity: got 2, not above stun-infra:minSize (2) "
                              "with stun-infra:warmPoolMinSize 0: the warm pool would hold no instance")


def test_a_group_that_cannot_grow_leaves_the_default_pool_always_empty():
    message = only_problem(**AUTOSCALE, minSize="3", desiredCapacity="3", maxSize="3", warmPool="Stopped")
    assert message.startswith("stun-infra:maxSize: got 3, not above stun-infra:minSize (3) with "
                              "stun-infra:warmPoolMinSize 0: the warm pool would hold no instance")


def test_a_small_prepared_capacity_with_a_minimum_pool_size_is_accepted():
    s = load_settings({**AUTOSCALE, "warmPool": "Stopped", "warmPoolMaxPreparedCapacity": "2",
                       "warmPoolMinSize": "1"}, stack="test", region="eu-west-3")
    assert (s.warm_pool_max_prepared_capacity, s.warm_pool_min_size) == (2, 1)
