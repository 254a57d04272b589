"""The stale IPv6 target reconciler, run for real against moto's EC2, Auto Scaling and ELB.

moto does not enact lifecycle hooks (no Pending:Wait or Terminating:Wait of its own): the
tests that need such a state put it in moto's Auto Scaling backend, and the reconciler then
reads it through the real DescribeAutoScalingGroups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws
from moto.autoscaling.models import autoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID

from stun_infra.functions import ipv6_targets
from stun_infra.functions.ipv6_targets import Target, reconcile, stale

REGION = "eu-west-3"
GROUP = "stun-infra-test-asg"
PORT = 3478
DEAD = "2001:db8:1:1::dead"


@dataclass
class Cloud:
    ec2: object
    elbv2: object
    autoscaling: object
    subnet: str
    groups: list[str]

    def instances(self) -> dict[str, str]:
        """instance id -> lifecycle state, as the group lists them."""
        (group,) = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
        return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}

    def give_ipv6(self, instance_id: str, address: str) -> str:
        (reservation,) = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        eni = reservation["Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
        self.ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Addresses=[address])
        return address

    def register(self, *addresses: str) -> None:
        for arn in self.groups:
            self.elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": a, "Port": PORT} for a in addresses])

    def registered(self) -> dict[str, set[str]]:
        return {arn: {d["Target"]["Id"] for d in self.elbv2.describe_target_health(
            TargetGroupArn=arn)["TargetHealthDescriptions"]} for arn in self.groups}

    def set_state(self, instance_id: str, state: str) -> None:
        group = autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION].autoscaling_groups[GROUP]
        (instance,) = [i for i in group.instance_states if i.instance.id == instance_id]
        instance.lifecycle_state = state

    def run(self) -> list[Target]:
        return reconcile(self.elbv2, self.autoscaling, self.ec2, GROUP, self.groups)


@pytest.fixture
def cloud():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        autoscaling = boto3.client("autoscaling", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]
        ec2.create_launch_template(LaunchTemplateName="coturn", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateName": "coturn", "Version": "$Latest"},
            MinSize=2, MaxSize=4, DesiredCapacity=2, VPCZoneIdentifier=subnet["SubnetId"])
        groups = [elbv2.create_target_group(
            Name=f"stun-infra-test-{key}-v6", Protocol=protocol, Port=PORT, VpcId=vpc, TargetType="ip",
            IpAddressType="ipv6", HealthCheckProtocol="TCP")["TargetGroups"][0]["TargetGroupArn"]
            for key, protocol in (("stun", "TCP_UDP"), ("tls", "TCP"))]
        yield Cloud(ec2, elbv2, autoscaling, subnet["SubnetId"], groups)


def live_pair(cloud: Cloud) -> tuple[str, str]:
    first, second = sorted(cloud.instances())
    return (cloud.give_ipv6(first, "2001:db8:1:1::a"), cloud.give_ipv6(second, "2001:db8:1:1::b"))


def test_a_dead_address_is_taken_out_of_every_ipv6_group_and_live_ones_stay(cloud):
    a, b = live_pair(cloud)
    cloud.register(a, b, DEAD)
    removed = cloud.run()
    assert {(t.address, t.port) for t in removed} == {(DEAD, PORT)} and len(removed) == 2
    assert cloud.registered() == {arn: {a, b} for arn in cloud.groups}


def test_the_address_of_an_instance_the_group_terminated_is_taken_out(cloud):
    a, b = live_pair(cloud)
    cloud.register(a, b)
    gone = next(i for i in cloud.instances() if cloud.ec2.describe_instances(InstanceIds=[i])[
        "Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]["Ipv6Addresses"][0]["Ipv6Address"] == a)
    cloud.autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=gone, ShouldDecrementDesiredCapacity=True)
    cloud.run()
    assert cloud.registered() == {arn: {b} for arn in cloud.groups}


@pytest.mark.parametrize("state", ["Pending", "Pending:Wait", "Pending:Proceed", "Terminating",
                                   "Terminating:Wait", "Terminating:Proceed", "Standby"])
def test_an_instance_the_group_still_lists_keeps_its_address(cloud, state):
    """A booting instance registers itself before it is InService; a draining one
    (Terminating:Wait) takes its own address out when its calls have moved."""
    a, b = live_pair(cloud)
    cloud.register(a, b)
    for instance in cloud.instances():
        cloud.set_state(instance, state)
    assert cloud.run() == []
    assert cloud.registered() == {arn: {a, b} for arn in cloud.groups}


def test_a_terminated_instance_the_group_still_lists_loses_its_address(cloud):
    a, b = live_pair(cloud)
    cloud.register(a, b)
    first = sorted(cloud.instances())[0]
    cloud.set_state(first, "Terminated")
    cloud.run()
    assert cloud.registered() == {arn: {b} for arn in cloud.groups}


def test_addresses_are_compared_as_addresses_not_strings(cloud):
    a, b = live_pair(cloud)
    cloud.register("2001:0db8:0001:0001:0000:0000:0000:000a", b)
    assert cloud.run() == []


def test_nothing_is_removed_when_the_group_is_not_found(cloud):
    cloud.register(DEAD)
    with pytest.raises(LookupError):
        reconcile(cloud.elbv2, cloud.autoscaling, cloud.ec2, "no-such-group", cloud.groups)
    assert cloud.registered() == {arn: {DEAD} for arn in cloud.groups}


def test_the_targets_are_read_before_the_group(cloud):
    """So every target seen belongs to an instance the group lists already (from Pending on)."""
    calls: list[str] = []
    for client in (cloud.elbv2, cloud.autoscaling, cloud.ec2):
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    live_pair(cloud)
    calls.clear()
    cloud.run()
    assert calls.index("DescribeTargetHealth") < calls.index("DescribeAutoScalingGroups")


@pytest.mark.parametrize("state", ["initial", "draining"])
def test_a_target_in_its_first_check_or_already_leaving_is_left_alone(state):
    assert stale([Target("arn", DEAD, PORT, state)], held=set()) == []


@pytest.mark.parametrize("state", ["healthy", "unhealthy", "unused", "unavailable"])
def test_a_target_in_any_other_state_without_an_instance_is_stale(state):
    assert stale([Target("arn", DEAD, PORT, state)], held=set()) == [Target("arn", DEAD, PORT, state)]


def test_the_handler_reads_its_group_and_target_groups_from_the_environment(cloud, monkeypatch, capsys):
    live_pair(cloud)
    cloud.register(DEAD)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("GROUP_NAME", GROUP)
    monkeypatch.setenv("TARGET_GROUP_ARNS", json.dumps(cloud.groups))
    result = ipv6_targets.handler({"source": "aws.events"}, None)
    assert len(result["removed"]) == 2 and all(DEAD in line for line in result["removed"])
    assert json.loads(capsys.readouterr().out) == result
