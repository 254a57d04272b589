"""An instance's own IPv6 address in the load balancer's IPv6 target groups (autoscale, dual stack).

Why the instance registers itself: an IPv6 client reaching an NLB's instance target group
(IPv4) is translated, and the target sees the load balancer's IPv4 address instead of the
client's (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html,
"Client IP preservation"): coturn's XOR-MAPPED-ADDRESS would then be wrong. Only IPv6
target groups preserve an IPv6 client's address, and they take IP targets only
(https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-target-groups.html),
which an Auto Scaling group does not register. So `stun-nlb-targets.service` registers the
instance's IPv6 address when it starts (every boot) and deregisters it when it stops (the
shutdown of a terminated or replaced instance); a target that vanished without stopping
fails its health check and gets no traffic. A draining instance takes its address out
first, with the same script (stun_infra/instance/drain.py): the group does that only for its
own (IPv4) targets. Deregistering again at shutdown is harmless: DeregisterTargets succeeds
for a target that is not registered
(https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeregisterTargets.html).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stun_infra.instance.services import CONFIGURED
from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

SCRIPT_PATH = "/usr/local/sbin/stun-nlb-targets"
ENV_PATH = "/etc/stun-infra/nlb-targets.env"
UNIT = "stun-nlb-targets.service"
# Bound on one `stun-nlb-targets deregister` (its retries included): the unit's stop timeout
# and the drain's wait for it.
DEREGISTER_SECONDS = 60
# A registration that failed (its own retries spent) is run again by systemd after this, forever.
REGISTER_RETRY_SECONDS = 30
# What the boot script may print into the script: an ELB target group ARN, nothing else.
_TARGET_GROUP_ARN = re.compile(
    r"arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{1,32}")


@dataclass(frozen=True)
class TargetGroupPort:
    arn: str
    port: int  # the port on the instance the group sends to


def checked(groups: list[TargetGroupPort]) -> list[TargetGroupPort]:
    for group in groups:
        if not _TARGET_GROUP_ARN.fullmatch(group.arn) or not 1 <= group.port <= 65535:
            raise ValueError(f"not a target group ARN and port: {group.arn!r} {group.port!r}")
    return groups


def script(groups: list[TargetGroupPort], env_path: str = ENV_PATH) -> str:
    """`stun-nlb-targets register|deregister`: the one implementation, run by the unit (boot,
    shutdown) and by the drain and its cancel."""
    return render("stun-nlb-targets.sh.j2", groups=checked(groups), env_path=env_path)


def stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    """Autoscale, dual stack: the program and its unit; enabled at a start that has an IPv6
    address (the script writes it, and the region, into the unit's EnvironmentFile)."""
    if not boot.ipv6_target_groups:
        return None
    return Stage("nlb-ipv6", files=(InstanceFile(SCRIPT_PATH, script(list(boot.ipv6_target_groups)), 0o755),),
                 units={UNIT: render("stun-nlb-targets.service.j2", script_path=SCRIPT_PATH,
                                     stop_seconds=DEREGISTER_SECONDS, restart_seconds=REGISTER_RETRY_SECONDS,
                                     configured=CONFIGURED)},
                 enable=(UNIT,), when='[ -n "${IPV6}" ]',
                 script=render("stages/nlb-ipv6.sh.j2", env_path=ENV_PATH))
