"""Autoscale: the group's launching lifecycle hook holds a new instance (Pending:Wait, or
Warmed:Pending:Wait on its way into a warm pool) until the instance completes the action.

Two stages: `warm-pool`, right after the install part (the package and AWS's agents), reads
IMDS's `autoscaling/target-lifecycle-state`; while it is `Warmed:*` the instance is being
prepared for a warm pool, so it completes the action there and stops: nothing registered,
published or started, and the group stops it only once installed (AWS does not wait for user
data: https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
A pool kept Running (no stop, no start to configure at) gets stun-infra-await-service, which
waits for the state `InService` and then configures. `launch`, the last stage, completes the
action of an instance going in service: the group registers it with the load balancer only
then, configured. A start with no action pending
(a reboot, a stack without the hook yet) is told so and goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance.services import CONFIGURE_UNIT
from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
# Install (the user data's fetch alone may take 300 s) and configure, with room: at the
# timeout the group abandons the instance (terminates and replaces it).
HOOK_TIMEOUT_SECONDS = 900
GROUP_TAG = "aws:autoscaling:groupName"
# A pool kept Running: installed instances wait there unconfigured; this unit waits with them
# and configures once the group puts the instance in service.
AWAIT_UNIT = "stun-infra-await-service.service"
AWAIT_PATH = "/usr/local/sbin/stun-infra-await-service"
POLL_SECONDS = 5


def hook_name(settings: Settings) -> str:
    return f"{settings.prefix}-launch"


def returns_to_pool(settings: Settings) -> bool:
    """A scale-in returns the instance to the warm pool instead of terminating it."""
    return settings.warm_pool_on and settings.warm_pool_reuse_on_scale_in


def warmed_stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    if not settings.autoscale:
        return None
    files, units = (), {}
    if settings.warm_pool == "Running":
        files = (InstanceFile(AWAIT_PATH, render("stun-infra-await-service.py.j2", poll_seconds=POLL_SECONDS,
                                                  configure_unit=CONFIGURE_UNIT), 0o755),)
        units = {AWAIT_UNIT: render(f"{AWAIT_UNIT}.j2", await_path=AWAIT_PATH)}
    return Stage("warm-pool", files=files, units=units,
                 script=render("stages/warm-pool.sh.j2", hook_name=hook_name(settings), group_tag=GROUP_TAG,
                               configure_unit=CONFIGURE_UNIT, await_unit=AWAIT_UNIT if units else None))


def stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    if not settings.autoscale:
        return None
    return Stage("launch", script=render("stages/launch.sh.j2"))
