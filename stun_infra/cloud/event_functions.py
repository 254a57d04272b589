"""A Lambda function of ours run by EventBridge rules: its log group, role, least-privilege
policy, the function shipping one module of stun_infra/functions alone, and a rule, a
permission and a target per trigger. The components that need one (the IPv6 target
reconciler, the warm pool's terminations) build it as their children, under names from
their own prefix and stem."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pulumi
import pulumi_aws as aws

from stun_infra import functions
from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.names import fitted

RUNTIME = "python3.12"  # boto3 included; supported by Lambda until 2028. x86_64 (the default): offered in every region
TIMEOUT_SECONDS = 60
MEMORY_MB = 128
NAME_LIMIT = 64  # function, rule and role names


def source_of(module: str) -> Path:
    return Path(functions.__file__).resolve().parent / f"{module}.py"


@dataclass(frozen=True)
class EventFunctionArgs:
    module: str                # stun_infra/functions/<module>.py, its `handler`
    stem: str                  # every child's name: <prefix>-<stem>[-...]
    description: str           # the role's
    policy: Callable[[str], pulumi.Input[str]]  # the log group's ARN -> the role's policy document
    environment: Mapping[str, pulumi.Input[str]]
    triggers: Mapping[str, Mapping[str, pulumi.Input[str]]]  # key -> EventRule arguments
    log_group_name: str
    log_retention_days: int
    tags: dict[str, str]


def event_function(parent: pulumi.Resource, name: str, args: EventFunctionArgs) -> aws.lambda_.Function:
    stem = args.stem
    logs = aws.cloudwatch.LogGroup(
        f"{name}-{stem}-logs", name=args.log_group_name, retention_in_days=args.log_retention_days,
        tags=tagged(args.tags, args.log_group_name), opts=child_opts(parent))
    role = aws.iam.Role(
        fitted(name, f"{stem}-role", NAME_LIMIT), description=args.description,
        assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]}),
        tags=tagged(args.tags, f"{name}-{stem}-role"), opts=child_opts(parent))
    policy = aws.iam.RolePolicy(f"{name}-{stem}-policy", role=role.id, policy=logs.arn.apply(args.policy),
                                opts=child_opts(parent))
    function = aws.lambda_.Function(
        fitted(name, stem, NAME_LIMIT), role=role.arn, runtime=RUNTIME, handler=f"{args.module}.handler",
        timeout=TIMEOUT_SECONDS, memory_size=MEMORY_MB,
        code=pulumi.AssetArchive({f"{args.module}.py": pulumi.FileAsset(str(source_of(args.module)))}),
        environment=aws.lambda_.FunctionEnvironmentArgs(variables=dict(args.environment)),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=logs.name),
        tags=tagged(args.tags, f"{name}-{stem}"),
        opts=child_opts(parent, depends_on=[policy, logs]))
    for key, trigger in args.triggers.items():
        rule = aws.cloudwatch.EventRule(fitted(name, f"{stem}-{key}", NAME_LIMIT), **trigger,
                                        tags=tagged(args.tags, f"{name}-{stem}-{key}"), opts=child_opts(parent))
        aws.lambda_.Permission(f"{name}-{stem}-{key}", action="lambda:InvokeFunction", function=function.name,
                               principal="events.amazonaws.com", source_arn=rule.arn, opts=child_opts(parent))
        aws.cloudwatch.EventTarget(f"{name}-{stem}-{key}", rule=rule.name, arn=function.arn, opts=child_opts(parent))
    return function
