"""Let the group terminate its warm pool's instances without waiting for them.

The group's termination hook holds every instance it terminates until the instance has
drained and completed the action itself (stun-drain watch). An instance in the warm pool
is stopped, or running unconfigured: it serves no call and cannot complete anything, so
every pool instance an instance refresh, a smaller pool or a failed health check
terminates would wait out the hook's whole timeout (drainSeconds plus a margin). This runs
on the group's "EC2 Instance-terminate Lifecycle Action" events whose origin is the warm
pool (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pools-eventbridge-events.html)
and completes the action at once. In-service instances (origin AutoScalingGroup) are never
touched: they drain first. Ships alone to AWS Lambda: the runtime's boto3 only.
"""

from __future__ import annotations

import os
from typing import Any

WARM_POOL = "WarmPool"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


def action_of(event: dict[str, Any], group_name: str) -> dict[str, str] | None:
    """The CompleteLifecycleAction arguments for this event, or None when it is not one to complete:
    another group, another transition, or an instance that is not leaving the warm pool."""
    detail = event.get("detail") or {}
    if (detail.get("AutoScalingGroupName") != group_name or detail.get("LifecycleTransition") != TERMINATING
            or detail.get("Origin") != WARM_POOL or not detail.get("LifecycleActionToken")):
        return None
    return {"AutoScalingGroupName": group_name, "LifecycleHookName": detail["LifecycleHookName"],
            "LifecycleActionToken": detail["LifecycleActionToken"], "InstanceId": detail["EC2InstanceId"],
            "LifecycleActionResult": "CONTINUE"}


def handler(event: dict[str, Any], context: Any, autoscaling: Any = None) -> str:
    action = action_of(event, os.environ["GROUP_NAME"])
    if action is None:
        print("not a warm pool instance's termination: nothing to do")
        return "ignored"
    if autoscaling is None:
        import boto3
        autoscaling = boto3.client("autoscaling")
    try:
        autoscaling.complete_lifecycle_action(**action)
    except autoscaling.exceptions.ClientError as e:
        # Already completed, or timed out: the group went on either way.
        print(f"{action['InstanceId']}: {e.response['Error'].get('Message', e)}")
        return "gone"
    print(f"{action['InstanceId']}: leaves the warm pool, terminated without waiting for the hook")
    return "completed"
