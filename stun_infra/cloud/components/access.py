"""Access: the instance role, least privilege for the CloudWatch agent, Session Manager,
reading exactly this stack's parameters and its instance package.

No kms:Decrypt statement: the SecureStrings use the AWS managed key aws/ssm, whose key
policy already lets the account's principals decrypt through Parameter Store. No AWS
managed policies either: AmazonSSMManagedInstanceCore would allow ssm:GetParameter on
every parameter in the account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT

SESSION_MANAGER_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]

# The SSM agent receives Run Command requests (the drain document, static mode) through the
# ec2messages service: these are the ec2messages actions of AWS's AmazonSSMManagedInstanceCore
# (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html).
RUN_COMMAND_ACTIONS = [
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
]


@dataclass(frozen=True)
class AccessArgs:
    parameter_arns: Sequence[pulumi.Input[str]]
    log_group_arn: pulumi.Input[str]
    metric_namespace: str
    tags: dict[str, str]
    exported_certificate_arn: pulumi.Input[str] | None = None  # static mode with ACM
    ipv6_target_group_arns: Sequence[pulumi.Input[str]] = ()  # autoscale, dual stack: groups it joins
    turn_secret_arn: pulumi.Input[str] | None = None  # TURN on: the current secret's parameter
    package_object_arn: pulumi.Input[str] | None = None  # the instance package (artifact.py)


def export_statement(certificate_arn: str) -> dict:
    """Export exactly this stack's certificate (static mode serves it from coturn)."""
    return {"Sid": "ExportOwnCertificate", "Effect": "Allow", "Action": ["acm:ExportCertificate"],
            "Resource": certificate_arn}


def sync_statement(turn_secret_arn: str) -> dict:
    """The secret sync reads the current and the previous TURN secret in one GetParameters call;
    the previous one exists only during a rotation (its ARN is the current one's plus
    `-previous`, as secret_sync.SecretParameters names it)."""
    return {"Sid": "SyncTurnSecrets", "Effect": "Allow", "Action": ["ssm:GetParameters"],
            "Resource": [turn_secret_arn, f"{turn_secret_arn}-previous"]}


def instance_policy(parameter_arns: list[str], log_group_arn: str, metric_namespace: str,
                    exported_certificate_arn: str | None = None, ipv6_target_group_arns: list[str] = (),
                    turn_secret_arn: str | None = None, package_object_arn: str | None = None) -> str:
    """The role's one inline policy, as JSON."""
    export = [export_statement(exported_certificate_arn)] if exported_certificate_arn else []
    export += [sync_statement(turn_secret_arn)] if turn_secret_arn else []
    # The boot fetches exactly this stack's instance package, nothing else of the bucket.
    export += [{"Sid": "ReadOwnPackage", "Effect": "Allow", "Action": ["s3:GetObject"],
                "Resource": package_object_arn}] if package_object_arn else []
    # Each instance puts its own IPv6 address in the load balancer's IPv6 groups, and takes it out.
    export += [{"Sid": "RegisterOwnIpv6Target", "Effect": "Allow",
                "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                "Resource": list(ipv6_target_group_arns)}] if ipv6_target_group_arns else []
    # STUN only with ACM's certificate: no parameter at all, and IAM refuses an empty Resource.
    read = [{"Sid": "ReadOwnParameters", "Effect": "Allow", "Action": ["ssm:GetParameter"],
             "Resource": parameter_arns}] if parameter_arns else []
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": read + export + [
            {"Sid": "ShipCoturnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": [log_group_arn, f"{log_group_arn}:*"]},
            {"Sid": "PublishMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
             "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": [metric_namespace, "CWAgent"]}}},
            {"Sid": "AgentDimensions", "Effect": "Allow", "Action": ["ec2:DescribeTags"], "Resource": "*"},
            {"Sid": "SessionManager", "Effect": "Allow", "Action": SESSION_MANAGER_ACTIONS, "Resource": "*"},
            {"Sid": "RunCommand", "Effect": "Allow", "Action": RUN_COMMAND_ACTIONS, "Resource": "*"},
        ],
    }, indent=2)


class InstanceAccess(pulumi.ComponentResource):
    role: aws.iam.Role
    profile: aws.iam.InstanceProfile

    def __init__(self, name: str, args: AccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:access:InstanceAccess", name, None, opts)
        self.role = aws.iam.Role(
            f"{name}-role", description="coturn instances: CloudWatch agent, Session Manager, own parameters",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "ec2.amazonaws.com"}}],
            }),
            tags=tagged(args.tags, f"{name}-role"), opts=child_opts(self))
        policy = pulumi.Output.all(list(args.parameter_arns), args.log_group_arn,
                                   args.exported_certificate_arn, list(args.ipv6_target_group_arns),
                                   args.turn_secret_arn, args.package_object_arn).apply(
            lambda a: instance_policy(a[0], a[1], args.metric_namespace, a[2], a[3], a[4], a[5]))
        aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=policy, opts=child_opts(self))
        self.profile = aws.iam.InstanceProfile(
            f"{name}-profile", role=self.role.name, tags=tagged(args.tags, f"{name}-profile"),
            opts=child_opts(self))
        self.register_outputs({"role_arn": self.role.arn, "instance_profile_arn": self.profile.arn})
