"""Every resource input of every example stack and mode, against AWS's published constraints.

botocore's service models give each API field's enum, length, range and pattern;
tests/support/aws_constraints.py maps each resource property to its field (or to a
rule AWS states only in prose, or to a stated reason it is not checked). A property
nobody mapped fails here until it is; a value AWS would refuse fails here before
`pulumi up` does.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from functools import cache

import pytest

from stun_infra.cloud.offline import OfflineRun, Registration, run_offline, stack_config
from tests.support import aws_constraints as ac

from .urns import CASES, DNS, REGIONS

# The URN cases, plus the keys they leave at their defaults that add resources or rules.
EXTRA = {"dev-ssh-email-tags": ("dev", {"sshAllowedCidrs": '["203.0.113.10/32", "2001:db8::/48"]',
                                        "alarmEmail": "oncall@example.com", "tags": '["team=media", "cost=42"]'}),
         "prod-email": ("prod", {"alarmEmail": "oncall@example.com"}),
         "prod-warm-pool": ("prod", {"warmPool": "Stopped", "warmPoolMinSize": "2", "warmPoolReuseOnScaleIn": "true",
                                     "drainSeconds": "3600"}),
         "prod-warm-pool-running": ("prod", {"warmPool": "Running", "warmPoolMaxPreparedCapacity": "8"}),
         # Several regions (beside the URN cases): latency records and health checks in autoscale mode,
         # the accelerator with a zone in static mode and in autoscale mode.
         "prod-regions-dns": ("prod", {"regions": REGIONS, **DNS}),
         "dev-regions-accelerator-dns": ("dev", {"regions": REGIONS, "globalAccelerator": "true", **DNS}),
         "dev-regions-accelerator-autoscale": ("dev", {"regions": REGIONS, "globalAccelerator": "true",
                                                       "mode": "autoscale", "ipv6": "false"})}
ALL_CASES = {**CASES, **EXTRA}


@cache
def run_of(case: str) -> OfflineRun:
    stack, overrides = ALL_CASES[case]
    config, secret_keys = stack_config(stack, overrides)
    return run_offline(config, stack=stack, secret_keys=secret_keys)


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_property_sent_is_mapped_to_an_api_field_a_documented_rule_or_a_reason(case):
    assert ac.unmapped(run_of(case)) == set(), \
        "map these in tests/support/aws_constraints.py (Api, Prose or NotMapped with the reason)"


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_input_is_within_awss_published_constraints(case):
    assert [str(v) for v in ac.violations(run_of(case))] == []


def test_every_mapped_api_field_exists_in_botocores_model():
    for typ, props in ac.MAPPING.items():
        for path, targets in props.items():
            for target in targets if isinstance(targets, list) else [targets]:
                if isinstance(target, ac.Api):
                    ac.shape_of(target)  # KeyError names a member that is not in the model


def test_every_prose_rule_cites_an_aws_documentation_page():
    rules = [t for props in ac.MAPPING.values() for ts in props.values()
             for t in (ts if isinstance(ts, list) else [ts]) if isinstance(t, ac.Prose)]
    assert rules and all(r.doc.startswith("https://docs.aws.amazon.com/") for r in rules)


def test_every_resource_type_created_is_mapped():
    created = {r.type for case in ALL_CASES for r in run_of(case).registrations if r.custom}
    assert created <= set(ac.MAPPING)


# -- the checker fails on what AWS would refuse (tampered registrations) -----------------

def tampered(typ: str, change, case: str = "dev-autoscale", name: str | None = None) -> OfflineRun:
    """The run with one registration's inputs changed by `change(inputs)`."""
    run = run_of(case)
    target = next(r for r in run.registrations if r.type == typ and (name is None or r.name == name))
    inputs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in target.inputs.items()}
    change(inputs)
    swapped = [dataclasses.replace(r, inputs=inputs) if r is target else r for r in run.registrations]
    return dataclasses.replace(run, registrations=swapped)


def problems(run: OfflineRun) -> list[str]:
    return [str(v) for v in ac.violations(run)]


def test_an_apostrophe_in_a_rule_description_is_refused_as_ec2_does():
    run = tampered("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                   lambda i: i.update(description="the instance's own address"))
    (problem,) = problems(run)
    assert "description" in problem and "API_IpRange.html" in problem


@pytest.mark.parametrize("bad", ["a,b", "it's", "$HOME", "line\nbreak"])
def test_a_tag_value_outside_the_tag_alphabet_is_refused(bad):
    run = tampered("aws:ssm/parameter:Parameter", lambda i: i["tags"].update(team=bad))
    found = problems(run)
    assert any("ssm PutParameter Tags[].Value" in p for p in found), found
    assert any("tags{value}" in p and "tag value" in p for p in found), found


def test_more_than_50_tags_on_a_resource_is_refused():
    run = tampered("aws:ec2/vpc:Vpc", lambda i: i["tags"].update({f"k{n}": "v" for n in range(50)}))
    assert any("at most 50 per resource" in p for p in problems(run))


def test_a_value_outside_an_enum_is_refused():
    run = tampered("aws:lb/targetGroup:TargetGroup", lambda i: i.update(protocol="TCP_UDPX"))
    (problem,) = problems(run)
    assert "elbv2 CreateTargetGroup Protocol" in problem and "not one of" in problem


def test_an_instance_type_ec2_does_not_know_is_refused():
    run = tampered("aws:ec2/launchTemplate:LaunchTemplate", lambda i: i.update(instanceType="t4g.smal"))
    (problem,) = problems(run)
    assert "LaunchTemplateData.InstanceType" in problem


def test_a_number_outside_the_apis_range_is_refused():
    run = tampered("aws:lb/targetGroup:TargetGroup", lambda i: i["healthCheck"].update(interval=3))
    (problem,) = problems(run)
    assert "HealthCheckIntervalSeconds" in problem and "at least 5" in problem


def test_a_load_balancer_name_pulumi_cannot_fit_in_32_characters_is_refused():
    run = run_of("dev-autoscale")
    long_name = dataclasses.replace(run.one("aws:lb/loadBalancer:LoadBalancer"), name="x" * 25 + "-nlb")
    run = dataclasses.replace(run, registrations=[long_name if r.type == long_name.type else r
                                                  for r in run.registrations])
    (problem,) = problems(run)
    assert "(autoname)" in problem and "API_CreateLoadBalancer.html" in problem


def test_user_data_over_16_kib_is_refused():
    big = base64.b64encode(os.urandom(16 * 1024 + 1)).decode()
    run = tampered("aws:ec2/launchTemplate:LaunchTemplate", lambda i: i.update(userData=big))
    (problem,) = problems(run)
    assert "16384" in problem


def test_a_new_property_nobody_mapped_fails_until_mapped():
    run = tampered("aws:ec2/launchTemplate:LaunchTemplate", lambda i: i.update(ebsOptimized="true"))
    assert ac.unmapped(run) == {("aws:ec2/launchTemplate:LaunchTemplate", "ebsOptimized")}


def test_a_new_resource_type_fails_until_mapped():
    run = run_of("dev-static")
    extra = Registration(urn="urn:x", id="x", type="aws:sqs/queue:Queue", name="b", parent="", custom=True,
                         inputs={"delaySeconds": 0}, secret_inputs=frozenset(), state={})
    run = dataclasses.replace(run, registrations=[*run.registrations, extra])
    assert ac.unmapped(run) == {("aws:sqs/queue:Queue", "delaySeconds")}


def test_a_warm_pool_state_aws_does_not_offer_is_caught():
    def frozen(inputs):
        inputs["warmPool"] = dict(inputs["warmPool"], poolState="Frozen")
    assert problems(tampered("aws:autoscaling/group:Group", frozen, case="prod-warm-pool")) == [
        'aws:autoscaling/group:Group stun-infra-prod-asg warmPool.poolState = "Frozen": not one of the 3 values the '
        "API accepts (autoscaling PutWarmPool PoolState)"]
