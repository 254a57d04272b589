"""The drain under mocks: autoscale's termination lifecycle hook, the role's one extra
permission (complete exactly that action on exactly this group), the load balancer keeping
a leaving instance's flows for drainSeconds; static mode's SSM document."""

from __future__ import annotations

import json

import pytest

from stun_infra.cloud.components.drain import DOCUMENT_TIMEOUT_MARGIN
from stun_infra.instance import drain, launch
from stun_infra.settings import DRAIN_SECONDS
from tests.conftest import program

HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
GROUP = "aws:autoscaling/group:Group"
DOCUMENT = "aws:ssm/document:Document"


@pytest.fixture(scope="module")
def autoscale():
    return program(mode="autoscale", drainSeconds=600)


@pytest.fixture(scope="module")
def static():
    return program(mode="static", instanceCount=2, drainSeconds=600)


def test_the_group_holds_terminating_instances_for_the_drain(autoscale):
    hook = autoscale.named(HOOK, "stun-infra-test-drain").inputs
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["autoscalingGroupName"] == autoscale.outputs["asg_name"]
    assert hook["name"] == "stun-infra-test-drain"
    assert hook["heartbeatTimeout"] == 600 + drain.HOOK_MARGIN_SECONDS  # the instance ends the wait, not the timeout
    assert hook["defaultResult"] == "CONTINUE"


@pytest.mark.parametrize("seconds", DRAIN_SECONDS)
def test_the_hook_timeout_stays_inside_what_aws_allows(seconds):
    hook = program(mode="autoscale", drainSeconds=seconds).named(HOOK, "stun-infra-test-drain").inputs
    assert 30 <= hook["heartbeatTimeout"] <= 7200  # PutLifecycleHook HeartbeatTimeout


def test_the_role_may_complete_the_lifecycle_action_of_this_group_only(autoscale):
    group_arn = autoscale.one(GROUP).state["arn"]
    role = autoscale.named("aws:iam/role:Role", "stun-infra-test-role")
    policy = autoscale.named(ROLE_POLICY, "stun-infra-test-complete-lifecycle").inputs
    assert policy["role"] == role.id  # the instances' role
    assert json.loads(policy["policy"])["Statement"] == [
        {"Sid": "CompleteOwnLifecycleAction", "Effect": "Allow",
         "Action": ["autoscaling:CompleteLifecycleAction"], "Resource": [group_arn]}]


def test_the_load_balancer_keeps_a_leaving_instances_flows_for_the_drain(autoscale):
    groups = [r.inputs for r in autoscale.of_type("aws:lb/targetGroup:TargetGroup")]
    assert groups and {g["deregistrationDelay"] for g in groups} == {600}
    assert {g["connectionTermination"] for g in groups} == {True}  # then they end, as AWS does for UDP


def test_destroy_waits_for_the_groups_drain_longer_than_the_providers_ten_minutes(autoscale):
    group = autoscale.one(GROUP)
    delay = max(r.inputs["deregistrationDelay"] for r in autoscale.of_type("aws:lb/targetGroup:TargetGroup"))
    seconds = int(group.delete_timeout.removesuffix("s"))
    assert seconds >= delay + 600 and seconds > 10 * 60  # terraform-provider-aws: Delete 10m by default


def test_static_mode_has_no_hook_and_autoscale_no_document(autoscale, static):
    assert not static.of_type(HOOK) and not autoscale.of_type(DOCUMENT)


def test_static_document_runs_the_drain_with_a_numeric_deadline(static):
    document = static.one(DOCUMENT).inputs
    assert (document["documentType"], document["documentFormat"], document["name"]) == (
        "Command", "JSON", "stun-infra-test-drain")
    assert static.outputs["drain_document_name"] == "stun-infra-test-drain"
    content = json.loads(document["content"])
    assert content["schemaVersion"] == "2.2"
    assert content["parameters"] == {"deadline": {
        "type": "String", "default": "600", "allowedPattern": "^[0-9]{1,4}$",
        "description": "Seconds to wait for live sessions to end (0-3600)"}}
    (step,) = content["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["inputs"]["runCommand"] == ["/usr/local/sbin/stun-drain now --deadline {{ deadline }}"]
    assert int(step["inputs"]["timeoutSeconds"]) == DRAIN_SECONDS[1] + DOCUMENT_TIMEOUT_MARGIN


def test_static_role_may_receive_run_command(static):
    statements = {s["Sid"]: s for s in json.loads(
        static.named(ROLE_POLICY, "stun-infra-test-policy").inputs["policy"])["Statement"]}
    assert statements["RunCommand"]["Action"] == [
        "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
        "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"]


def test_the_group_holds_each_new_instance_until_it_is_installed_and_configured(autoscale):
    hook = autoscale.named(HOOK, "stun-infra-test-launch").inputs
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["autoscalingGroupName"] == autoscale.outputs["asg_name"]
    assert hook["name"] == "stun-infra-test-launch"
    assert 30 <= hook["heartbeatTimeout"] == launch.HOOK_TIMEOUT_SECONDS <= 7200  # PutLifecycleHook HeartbeatTimeout
    assert hook["defaultResult"] == "ABANDON"  # an instance that never completes it is replaced


def test_a_static_fleet_has_no_lifecycle_hook(static):
    assert static.of_type(HOOK) == []
