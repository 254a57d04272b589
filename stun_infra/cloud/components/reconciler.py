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
from typing import Sequence

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.event_functions import EventFunctionArgs, event_function, source_of
from stun_infra.common.project import PROJECT

MODULE = "ipv6_targets"
SOURCE = source_of(MODULE)
SCHEDULE = "rate(5 minutes)"  # catches what an event missed; ~8,900 invocations a month


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
        target_group_arns = pulumi.Output.all(*args.target_group_arns).apply(list)
        self.function = event_function(self, name, EventFunctionArgs(
            module=MODULE, stem="ipv6-targets", description="Takes stale addresses out of the IPv6 target groups",
            policy=lambda log_group_arn: target_group_arns.apply(lambda arns: function_policy(arns, log_group_arn)),
            environment={"GROUP_NAME": args.group_name,
                         "TARGET_GROUP_ARNS": target_group_arns.apply(json.dumps)},
            triggers={
                "terminated": {"event_pattern": pulumi.Output.from_input(args.group_name).apply(terminate_pattern),
                               "description": "This group's terminated instances: their IPv6 targets go"},
                "schedule": {"schedule_expression": SCHEDULE,
                             "description": "Stale IPv6 targets go, whatever an event missed"}},
            log_group_name=args.log_group_name, log_retention_days=args.log_retention_days, tags=args.tags))
        self.register_outputs({"function_name": self.function.name})
