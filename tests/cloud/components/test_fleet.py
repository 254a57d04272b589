"""StaticFleet and AutoscaleFleet, each built alone from one launch spec."""

import pulumi

from stun_infra.cloud.components.fleet import (AutoscaleFleet, AutoscaleFleetArgs, CpuScaling, LaunchSpec,
                                               StaticFleet, StaticFleetArgs)
from tests.cloud.components.conftest import ACCOUNT, TAGS, build_alone, children, component

SPEC = LaunchSpec(ami_id="ami-0123", root_device_name="/dev/xvda", instance_type="t4g.small", key_name="k",
                  instance_profile_name="p", instance_profile_arn=f"arn:aws:iam::{ACCOUNT}:instance-profile/p",
                  security_group_id="sg-1", root_volume_size=8, tags=TAGS)
SUBNETS = ["subnet-1", "subnet-2"]


def user_data(eip: pulumi.Output[str]) -> pulumi.Output[str]:
    return eip.apply(lambda ip: f"#!/bin/sh\necho {ip}\n")


def test_the_static_fleet_alone_gives_each_instance_an_elastic_ip():
    run = build_alone(lambda: StaticFleet("alone", StaticFleetArgs(spec=SPEC, subnet_ids=SUBNETS, count=3,
                                                                  user_data_for=user_data)))
    component(run, "stun-infra:fleet:StaticFleet")
    instances = children(run, "aws:ec2/instance:Instance")
    assert len(instances) == len(children(run, "aws:ec2/eipAssociation:EipAssociation")) == 3
    assert {i.inputs["instanceType"] for i in instances} == {SPEC.instance_type}


def test_the_autoscale_fleet_alone_launches_from_one_template_within_its_bounds():
    run = build_alone(lambda: AutoscaleFleet("alone", AutoscaleFleetArgs(
        spec=SPEC, subnet_ids=SUBNETS, min_size=1, desired_capacity=2, max_size=3, user_data="#!/bin/sh\n",
        target_group_arns=[], health_check_grace_period=300, min_healthy_percentage=90, scaling=CpuScaling(50))))
    component(run, "stun-infra:fleet:AutoscaleFleet")
    group = run.one("aws:autoscaling/group:Group")
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"]) == (1, 2, 3)
    assert run.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["imageId"] == SPEC.ami_id
