"""WarmPoolTerminations: the group terminates its warm pool's instances without waiting.

Autoscale with a warm pool. The termination hook that lets an in-service instance drain
also holds every pool instance the group terminates (instance refresh, a smaller pool, a
failed health check), and a pool instance, stopped or unconfigured, never completes it:
each would wait drainSeconds and more. A function (stun_infra/functions/warm_pool_terminations.py,
shipped alone) completes exactly those actions, on the group's lifecycle events whose origin
is the warm pool. Least privilege: complete lifecycle actions on exactly this group; write
to its own log group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.event_functions import EventFunctionArgs, event_function, source_of
from stun_infra.common.project import PROJECT

MODULE = "warm_pool_terminations"
SOURCE = source_of(MODULE)


@dataclass(frozen=True)
class WarmPoolTerminationsArgs:
    group_name: pulumi.Input[str]
    group_arn: pulumi.Input[str]
    log_group_name: str
    log_retention_days: int
    tags: dict[str, str]


def pool_termination_pattern(group_name: str) -> str:
    """EventBridge pattern: this group's termination lifecycle actions for warm pool instances
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pools-eventbridge-events.html)."""
    return json.dumps({"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"],
                       "detail": {"AutoScalingGroupName": [group_name], "Origin": ["WarmPool"]}})


def function_policy(group_arn: str, log_group_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "CompletePoolTerminations", "Effect": "Allow",
         "Action": ["autoscaling:CompleteLifecycleAction"], "Resource": [group_arn]},
        {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"{log_group_arn}:*"]},
    ]}, indent=2)


class WarmPoolTerminations(pulumi.ComponentResource):
    function: aws.lambda_.Function

    def __init__(self, name: str, args: WarmPoolTerminationsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:fleet:WarmPoolTerminations", name, None, opts)
        group_arn = pulumi.Output.from_input(args.group_arn)
        self.function = event_function(self, name, EventFunctionArgs(
            module=MODULE, stem="pool-terminations",
            description="Lets the group terminate warm pool instances without waiting for the drain hook",
            policy=lambda log_group_arn: group_arn.apply(lambda arn: function_policy(arn, log_group_arn)),
            environment={"GROUP_NAME": args.group_name},
            triggers={"terminating": {
                "event_pattern": pulumi.Output.from_input(args.group_name).apply(pool_termination_pattern),
                "description": "This group's warm pool instances being terminated: completed at once"}},
            log_group_name=args.log_group_name, log_retention_days=args.log_retention_days, tags=args.tags))
        self.register_outputs({"function_name": self.function.name})
