"""Drain: what lets an instance leave without dropping the calls it relays.

Autoscale (`ScaleInDrain`): a termination lifecycle hook holds every instance the group
terminates (scale-in, instance refresh) in Terminating:Wait while it drains, and a role
policy lets the instance complete exactly that action on exactly this group. The order,
from AWS's documentation
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html): the
group first deregisters the instance from the load balancer, which keeps its established
flows for the deregistration delay (the target groups use drainSeconds) and sends it no
new one; then the hook's wait (Terminating:Wait) begins, bounded by the heartbeat timeout
(drainSeconds plus a margin, stun_infra.instance.drain.hook_timeout). The instance itself
starts draining when IMDS's target lifecycle state turns Terminated and completes the
action when its sessions are gone or drainSeconds have passed.

Static (`DrainDocument`): an SSM Command document that runs the same drain on the
instances it is sent to (Run Command), so a roll is: drain, replace, next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.cloud.components.fleet import InitialHook
from stun_infra.common.project import PROJECT
from stun_infra.instance import drain, launch
from stun_infra.settings import DRAIN_SECONDS, Settings

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
DOCUMENT_TIMEOUT_MARGIN = 120  # the Run Command step outlives the longest deadline by this
# Deleting the group (destroy, or a replacement) scales it to zero, and the group keeps each
# instance's load-balancer flows for the deregistration delay (drainSeconds) before it
# terminates it: the provider's default 10-minute delete timeout is shorter than the
# default 15-minute drain, so the delete would fail half way. This margin covers the
# terminations themselves.
GROUP_DELETE_MARGIN = 600


def group_delete_timeout(drain_seconds: int) -> str:
    """How long `pulumi destroy` waits for the group: its drain plus the terminations."""
    return f"{drain_seconds + GROUP_DELETE_MARGIN}s"


def group_hooks(settings: Settings) -> tuple[InitialHook, InitialHook]:
    """(termination, launching): the group's two lifecycle hooks, as the group is created with
    them and as ScaleInDrain and LaunchHook keep them."""
    # At its timeout a termination hook terminates anyway (CONTINUE and ABANDON both do); a
    # launching hook's ABANDON terminates and replaces an instance that never configured.
    return (InitialHook(drain.hook_name(settings), TERMINATING, drain.hook_timeout(settings), "CONTINUE"),
            InitialHook(launch.hook_name(settings), launch.LAUNCHING, launch.HOOK_TIMEOUT_SECONDS, "ABANDON"))


def lifecycle_hook(name: str, hook: InitialHook, group_name: pulumi.Input[str],
                   parent: pulumi.Resource) -> aws.autoscaling.LifecycleHook:
    """The group's hook as a resource of its own too: the group's `initialLifecycleHooks` are
    ignored once it exists, so later changes of the hook reach AWS through this one."""
    return aws.autoscaling.LifecycleHook(
        name, name=hook.name, autoscaling_group_name=group_name, lifecycle_transition=hook.transition,
        heartbeat_timeout=hook.heartbeat_seconds, default_result=hook.default_result, opts=child_opts(parent))


@dataclass(frozen=True)
class ScaleInDrainArgs:
    group_name: pulumi.Input[str]
    group_arn: pulumi.Input[str]
    role_id: pulumi.Input[str]   # the instances' role
    hook: InitialHook            # group_hooks()[0]: the group was created with it


def complete_lifecycle_policy(group_arn: str) -> str:
    """Exactly one action, on exactly this group (autoscaling supports resource-level
    permissions for CompleteLifecycleAction on an autoScalingGroup ARN)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "CompleteOwnLifecycleAction", "Effect": "Allow",
         "Action": ["autoscaling:CompleteLifecycleAction"], "Resource": [group_arn]}]}, indent=2)


class ScaleInDrain(pulumi.ComponentResource):
    def __init__(self, name: str, args: ScaleInDrainArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:fleet:ScaleInDrain", name, None, opts)
        self.hook = lifecycle_hook(f"{name}-drain", args.hook, args.group_name, self)
        aws.iam.RolePolicy(
            f"{name}-complete-lifecycle", role=args.role_id,
            policy=pulumi.Output.from_input(args.group_arn).apply(complete_lifecycle_policy),
            opts=child_opts(self))
        self.register_outputs({"lifecycle_hook_name": self.hook.name})


@dataclass(frozen=True)
class LaunchHookArgs:
    group_name: pulumi.Input[str]
    hook: InitialHook  # group_hooks()[1]: the group was created with it


class LaunchHook(pulumi.ComponentResource):
    """A launching lifecycle hook: the group holds each new instance (Pending:Wait, or
    Warmed:Pending:Wait on its way into a warm pool) until the instance, installed and
    configured, completes the action (stun_infra.instance.launch; ScaleInDrain's policy lets
    it, on exactly this group). At the timeout the group abandons the instance: terminated
    and replaced, as a failed boot should be."""

    def __init__(self, name: str, args: LaunchHookArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:fleet:LaunchHook", name, None, opts)
        self.hook = lifecycle_hook(f"{name}-launch", args.hook, args.group_name, self)
        self.register_outputs({"lifecycle_hook_name": self.hook.name})


def document_content(drain_seconds: int) -> str:
    """SSM Command document (schema 2.2): run the drain with the `deadline` parameter (digits
    only, so nothing but a number reaches the shell; the program refuses more than the maximum)."""
    return json.dumps({
        "schemaVersion": "2.2",
        "description": "stun-infra: refuse new STUN/TURN flows on this instance and wait until its live "
                       "TURN sessions end or the deadline passes (then replace it)",
        "parameters": {"deadline": {
            "type": "String", "default": str(drain_seconds), "allowedPattern": "^[0-9]{1,4}$",
            "description": f"Seconds to wait for live sessions to end (0-{DRAIN_SECONDS[1]})"}},
        "mainSteps": [{
            "action": "aws:runShellScript", "name": "drain",
            "inputs": {"timeoutSeconds": str(DRAIN_SECONDS[1] + DOCUMENT_TIMEOUT_MARGIN),
                       "runCommand": [drain.document_command("{{ deadline }}")]}}],
    }, indent=2)


@dataclass(frozen=True)
class DrainDocumentArgs:
    document_name: str
    drain_seconds: int
    tags: dict[str, str]


class DrainDocument(pulumi.ComponentResource):
    def __init__(self, name: str, args: DrainDocumentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:fleet:DrainDocument", name, None, opts)
        self.document = aws.ssm.Document(
            f"{name}-drain", name=args.document_name, document_type="Command", document_format="JSON",
            content=document_content(args.drain_seconds), tags=tagged(args.tags, f"{name}-drain"),
            opts=child_opts(self))
        self.register_outputs({"drain_document_name": self.document.name})
