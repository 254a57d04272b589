"""Take out of the load balancer's IPv6 target groups the addresses no instance holds any more.

Each instance registers its own IPv6 address in the IPv6 target groups (IP targets: the
Auto Scaling group registers only instance targets) and takes it out when it drains or
shuts down. One that dies without a clean shutdown leaves its address behind: the group
cannot clean IP targets, the dead address stays unhealthy, and if every IPv6 target is
unhealthy the NLB fails open and sends IPv6 clients to dead addresses. This runs on the
group's terminate events and on a schedule, and deregisters the targets whose address
belongs to no instance the group still lists.

Never removes what may still be alive: the targets are read before the group, so every
target seen was registered by an instance already launched (listed from Pending on); every
instance the group lists, in any state but Terminated (Pending, InService, Terminating:Wait
while it drains, Standby...), keeps its addresses; a target still in its first health check
(`initial`) or already `draining` is left alone; any failed or partial answer removes
nothing. Ships alone to AWS Lambda: standard library and the runtime's boto3 only.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

GONE = frozenset({"Terminated"})  # Auto Scaling lifecycle states whose instance holds nothing
UNTOUCHED = frozenset({"initial", "draining"})  # target health states never removed
DESCRIBE_BATCH = 100  # instance ids per DescribeInstances call


@dataclass(frozen=True)
class Target:
    group_arn: str
    address: str
    port: int
    state: str


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


def registered(elbv2: Any, group_arns: Iterable[str]) -> list[Target]:
    """Every target of the groups, with its health state."""
    return [Target(arn, _canonical(d["Target"]["Id"]), int(d["Target"]["Port"]), d["TargetHealth"]["State"])
            for arn in group_arns
            for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]]


def held_addresses(autoscaling: Any, ec2: Any, group_name: str) -> set[str]:
    """The IPv6 addresses of every instance the Auto Scaling group lists and has not terminated."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if len(groups) != 1:
        raise LookupError(f"Auto Scaling group {group_name!r} not found: nothing is removed")
    ids = sorted(i["InstanceId"] for i in groups[0]["Instances"] if i["LifecycleState"] not in GONE)
    held: set[str] = set()
    for start in range(0, len(ids), DESCRIBE_BATCH):
        batch = ids[start:start + DESCRIBE_BATCH]
        # Named ids: an id EC2 does not know yet fails the call (InvalidInstanceID.NotFound).
        found = [i for r in ec2.describe_instances(InstanceIds=batch)["Reservations"] for i in r["Instances"]]
        if {i["InstanceId"] for i in found} != set(batch):
            raise LookupError("EC2 did not describe every instance of the group: nothing is removed")
        held |= {_canonical(a["Ipv6Address"]) for i in found for n in i.get("NetworkInterfaces", [])
                 for a in n.get("Ipv6Addresses", [])}
    return held


def stale(targets: Iterable[Target], held: set[str]) -> list[Target]:
    """Targets whose address no live instance holds, except those starting or already leaving."""
    return [t for t in targets if t.address not in held and t.state not in UNTOUCHED]


def reconcile(elbv2: Any, autoscaling: Any, ec2: Any, group_name: str, group_arns: list[str]) -> list[Target]:
    """Deregister the stale targets; returns them."""
    targets = registered(elbv2, group_arns)  # first: see the comment at the top
    removed = stale(targets, held_addresses(autoscaling, ec2, group_name))
    for arn in sorted({t.group_arn for t in removed}):
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=[
            {"Id": t.address, "Port": t.port} for t in removed if t.group_arn == arn])
    return removed


def handler(event: dict, context: Any) -> dict:
    import boto3  # the Lambda runtime's; imported here so that the module loads without it

    removed = reconcile(boto3.client("elbv2"), boto3.client("autoscaling"), boto3.client("ec2"),
                        os.environ["GROUP_NAME"], json.loads(os.environ["TARGET_GROUP_ARNS"]))
    result = {"removed": [f"{t.address} port {t.port} from {t.group_arn}" for t in removed]}
    print(json.dumps(result))
    return result
