"""Ipv6TargetReconciler: the Lambda function that takes stale addresses out of the IPv6 target groups.

Autoscale, dual stack. Each instance registers its own IPv6 address (IP targets); one that
dies without a clean shutdown leaves it registered, and an IP target group cannot clean it.
The function (stun_infra/functions/ipv6_targets.py, shipped alone) runs on the group's
"EC2 Instance Terminate Successful" events and every few minutes, and deregisters the
targets whose address no instance of the group holds. Least privilege: deregister in
exactly these target groups; the three describe calls it needs take no resource-level
permission (service authorization reference: DescribeTargetHealth, DescribeAutoScalingGroups,
DescribeInstances); write to its own log group only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_aws as aws

from stun_infra import functions
from stun_infra.cloud.components.base import child_opts, fitted, tagged
from stun_infra.common.project import PROJECT

MODULE = "ipv6_targets"
SOURCE = Path(functions.__file__).resolve().parent / f"{MODULE}.py"
RUNTIME = "python3.12"  # boto3 included; supported by Lambda until 2028. x86_64 (the default): offered in every region
SCHEDULE = "rate(5 minutes)"  # catches what an event missed; ~8,900 invocations a month
TIMEOUT_SECONDS = 60
MEMORY_MB = 128
NAME_LIMIT = 64  # function, rule and role names


@dataclass(frozen=True)
class ReconcilerArgs:
    group_name: pulumi.Input[str]
    target_group_arns: Sequence[pulumi.Input[str]]  # the IPv6 groups
    log_group_name: str
    log_retention_days: int
    tags: dict[str, str]


def terminate_pattern(group_name: str) -> str:
    """EventBridge pattern: this group's successful terminations
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/automating-ec2-auto-scaling-with-eventbridge.html)."""
    return json.dumps({"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance Terminate Successful"],
                       "detail": {"AutoScalingGroupName": [group_name]}})


def function_policy(target_group_arns: list[str], log_group_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DeregisterStaleIpv6Targets", "Effect": "Allow",
         "Action": ["elasticloadbalancing:DeregisterTargets"], "Resource": target_group_arns},
        {"Sid": "SeeTargetsAndInstances", "Effect": "Allow",
         "Action": ["elasticloadbalancing:DescribeTargetHealth", "autoscaling:DescribeAutoScalingGroups",
                    "ec2:DescribeInstances"], "Resource": "*"},
        {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"{log_group_arn}:*"]},
    ]}, indent=2)


class Ipv6TargetReconciler(pulumi.ComponentResource):
    function: aws.lambda_.Function

    def __init__(self, name: str, args: ReconcilerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:endpoint:Ipv6TargetReconciler", name, None, opts)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-ipv6-targets-logs", name=args.log_group_name, retention_in_days=args.log_retention_days,
            tags=tagged(args.tags, args.log_group_name), opts=child_opts(self))
        role = aws.iam.Role(
            fitted(name, "ipv6-targets-role", NAME_LIMIT), description="Takes stale addresses out of the IPv6 target groups",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]}),
            tags=tagged(args.tags, f"{name}-ipv6-targets-role"), opts=child_opts(self))
        policy = aws.iam.RolePolicy(
            f"{name}-ipv6-targets-policy", role=role.id,
            policy=pulumi.Output.all(list(args.target_group_arns), logs.arn).apply(
                lambda a: function_policy(a[0], a[1])),
            opts=child_opts(self))
        self.function = aws.lambda_.Function(
            fitted(name, "ipv6-targets", NAME_LIMIT), role=role.arn, runtime=RUNTIME, handler=f"{MODULE}.handler",
            timeout=TIMEOUT_SECONDS, memory_size=MEMORY_MB,
            code=pulumi.AssetArchive({f"{MODULE}.py": pulumi.FileAsset(str(SOURCE))}),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "GROUP_NAME": args.group_name,
                "TARGET_GROUP_ARNS": pulumi.Output.all(*args.target_group_arns).apply(lambda a: json.dumps(list(a)))}),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=logs.name),
            tags=tagged(args.tags, f"{name}-ipv6-targets"),
            opts=child_opts(self, depends_on=[policy, logs]))
        triggers = {
            "terminated": {"event_pattern": pulumi.Output.from_input(args.group_name).apply(terminate_pattern),
                           "description": "This group's terminated instances: their IPv6 targets go"},
            "schedule": {"schedule_expression": SCHEDULE,
                         "description": "Stale IPv6 targets go, whatever an event missed"},
        }
        for key, trigger in triggers.items():
            rule = aws.cloudwatch.EventRule(fitted(name, f"ipv6-targets-{key}", NAME_LIMIT), **trigger,
                                            tags=tagged(args.tags, f"{name}-ipv6-targets-{key}"),
                                            opts=child_opts(self))
            aws.lambda_.Permission(f"{name}-ipv6-targets-{key}", action="lambda:InvokeFunction",
                                   function=self.function.name, principal="events.amazonaws.com",
                                   source_arn=rule.arn, opts=child_opts(self))
            aws.cloudwatch.EventTarget(f"{name}-ipv6-targets-{key}", rule=rule.name, arn=self.function.arn,
                                       opts=child_opts(self))
        self.register_outputs({"function_name": self.function.name})
