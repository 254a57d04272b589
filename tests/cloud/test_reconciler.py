"""The stale IPv6 target reconciler as deployed: what runs, on what, allowed to do what."""

from __future__ import annotations

import json

import pytest

from stun_infra.cloud.components.reconciler import SOURCE
from stun_infra.cloud.offline import run_offline, stack_config
from tests.conftest import program
from tests.support import aws_constraints as ac

FUNCTION = "aws:lambda/function:Function"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"
POLICY = "aws:iam/rolePolicy:RolePolicy"
TG = "aws:lb/targetGroup:TargetGroup"
GROUP = "aws:autoscaling/group:Group"


def ipv6_group_arns(run) -> list[str]:
    return sorted(r.state["arn"] for r in run.of_type(TG) if r.inputs.get("ipAddressType") == "ipv6")


def test_the_function_ships_the_handler_file_alone_on_a_python_runtime(autoscale_run):
    fn = autoscale_run.one(FUNCTION).inputs
    assert fn["runtime"].startswith("python3") and fn["handler"] == "ipv6_targets.handler"
    assets = fn["code"].assets
    assert list(assets) == ["ipv6_targets.py"] and assets["ipv6_targets.py"].path == str(SOURCE)


def test_the_function_is_told_its_group_and_the_ipv6_target_groups(autoscale_run):
    env = autoscale_run.one(FUNCTION).inputs["environment"]["variables"]
    assert env["GROUP_NAME"] == autoscale_run.one(GROUP).state["name"]
    assert sorted(json.loads(env["TARGET_GROUP_ARNS"])) == ipv6_group_arns(autoscale_run) and len(
        ipv6_group_arns(autoscale_run)) == 2


def test_the_function_may_deregister_only_in_the_ipv6_target_groups(autoscale_run):
    policy = autoscale_run.named(POLICY, "stun-infra-test-ipv6-targets-policy").inputs
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert statements["DeregisterStaleIpv6Targets"]["Action"] == ["elasticloadbalancing:DeregisterTargets"]
    assert sorted(statements["DeregisterStaleIpv6Targets"]["Resource"]) == ipv6_group_arns(autoscale_run)
    assert not any(a.endswith(("RegisterTargets", "*")) for s in statements.values() for a in s["Action"]
                   if s["Sid"] != "DeregisterStaleIpv6Targets")


def test_the_function_writes_only_to_its_own_log_group(autoscale_run):
    logs = autoscale_run.named("aws:cloudwatch/logGroup:LogGroup", "stun-infra-test-ipv6-targets-logs")
    fn = autoscale_run.one(FUNCTION).inputs
    statements = json.loads(autoscale_run.named(POLICY, "stun-infra-test-ipv6-targets-policy").inputs["policy"])
    (own,) = [s for s in statements["Statement"] if s["Sid"] == "OwnLogs"]
    assert own["Resource"] == [f"{logs.state['arn']}:*"] and fn["loggingConfig"]["logGroup"] == logs.inputs["name"]
    coturn = autoscale_run.named("aws:cloudwatch/logGroup:LogGroup", "stun-infra-test-coturn")
    assert logs.inputs["retentionInDays"] == coturn.inputs["retentionInDays"]  # the stack's logRetentionDays


def test_only_lambda_may_assume_the_functions_role(autoscale_run):
    role = autoscale_run.named("aws:iam/role:Role", "stun-infra-test-ipv6-targets-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert autoscale_run.one(FUNCTION).inputs["role"] == role.state["arn"]


def test_the_function_runs_on_the_groups_terminations_and_on_a_schedule(autoscale_run):
    rules = {r.name.rsplit("-", 1)[-1]: r for r in autoscale_run.of_type(RULE)}
    assert set(rules) == {"terminated", "schedule"}
    pattern = json.loads(rules["terminated"].inputs["eventPattern"])
    assert pattern == {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance Terminate Successful"],
                       "detail": {"AutoScalingGroupName": [autoscale_run.one(GROUP).state["name"]]}}
    assert rules["schedule"].inputs["scheduleExpression"].startswith("rate(")


def test_each_trigger_may_invoke_the_function_and_targets_it(autoscale_run):
    fn = autoscale_run.one(FUNCTION)
    for rule in autoscale_run.of_type(RULE):
        (permission,) = [p.inputs for p in autoscale_run.of_type(PERMISSION) if p.inputs["sourceArn"] == rule.state["arn"]]
        assert permission["principal"] == "events.amazonaws.com" and permission["action"] == "lambda:InvokeFunction"
        (target,) = [t.inputs for t in autoscale_run.of_type(TARGET) if t.inputs["rule"] == rule.state["name"]]
        assert target["arn"] == fn.state["arn"]


@pytest.mark.parametrize("config", [{}, {"mode": "autoscale", "ipv6": "false"}], ids=["static", "autoscale-ipv4"])
def test_without_ipv6_targets_there_is_no_reconciler(config):
    assert not program(**config).of_type(FUNCTION)


def test_the_longest_stack_name_still_gives_names_aws_accepts():
    stack = "s" + "-x" * 19 + "y"  # 40 characters
    config, secret_keys = stack_config("dev", {"mode": "autoscale"})
    run = run_offline(config, stack=stack, secret_keys=secret_keys)
    assert len(stack) == 40 and run.of_type(FUNCTION)
    assert [str(v) for v in ac.violations(run)] == []
