"""The warm pool's terminations function: it completes the termination hook's action of an
instance leaving the warm pool, and of nothing else (an in-service instance drains first)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from stun_infra.functions.warm_pool_terminations import action_of, handler

GROUP = "stun-infra-test-asg"


def event(**detail) -> dict:
    """An "EC2 Instance-terminate Lifecycle Action" event as EventBridge delivers it
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pools-eventbridge-events.html)."""
    return {"source": "aws.autoscaling", "detail-type": "EC2 Instance-terminate Lifecycle Action",
            "detail": {"LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
                       "AutoScalingGroupName": GROUP, "LifecycleHookName": "stun-infra-test-drain",
                       "EC2InstanceId": "i-1234567890abcdef0",
                       "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                       "Origin": "WarmPool", "Destination": "EC2", **detail}}


class AutoScaling:
    """Records CompleteLifecycleAction; `refuse` makes it answer as AWS does once the action is gone."""
    exceptions = type("exceptions", (), {"ClientError": ClientError})

    def __init__(self, refuse: bool = False):
        self.calls: list[dict] = []
        self.refuse = refuse

    def complete_lifecycle_action(self, **kwargs):
        self.calls.append(kwargs)
        if self.refuse:
            raise ClientError({"Error": {"Code": "ValidationError",
                                         "Message": "No active Lifecycle Action found with instance ID i-1"}},
                              "CompleteLifecycleAction")


@pytest.fixture(autouse=True)
def group_name(monkeypatch):
    monkeypatch.setenv("GROUP_NAME", GROUP)


def test_a_warm_pool_instance_being_terminated_is_let_go_at_once():
    client = AutoScaling()
    assert handler(event(), None, client) == "completed"
    assert client.calls == [{"AutoScalingGroupName": GROUP, "LifecycleHookName": "stun-infra-test-drain",
                             "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
                             "InstanceId": "i-1234567890abcdef0", "LifecycleActionResult": "CONTINUE"}]


@pytest.mark.parametrize("detail", [
    {"Origin": "AutoScalingGroup"},                                   # in service: it drains and completes itself
    {"Origin": "AutoScalingGroup", "Destination": "WarmPool"},        # back to the pool: it drains too
    {"AutoScalingGroupName": "someone-elses-asg"},
    {"LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"},
    {"LifecycleActionToken": ""},
], ids=["in-service", "returning-to-pool", "other-group", "launching", "no-token"])
def test_anything_but_a_pool_instances_termination_is_left_alone(detail):
    client = AutoScaling()
    assert handler(event(**detail), None, client) == "ignored" and client.calls == []


def test_an_action_already_gone_is_said_and_not_an_error():
    assert handler(event(), None, AutoScaling(refuse=True)) == "gone"


def test_an_event_without_detail_is_ignored():
    assert action_of({"source": "aws.events"}, GROUP) is None
