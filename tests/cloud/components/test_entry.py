"""LatencyEntry and GlobalAccelerator, each built alone."""

from stun_infra.cloud.components.entry import (AcceleratorArgs, GlobalAccelerator, LatencyArgs, LatencyEntry,
                                               RegionTarget)
from tests.cloud.components.conftest import TAGS, build_alone, component

BALANCED = [RegionTarget(region=r, load_balancer=(f"nlb.{r}.example", "Z1", f"arn:aws:elasticloadbalancing:{r}:1:lb"))
            for r in ("eu-west-3", "us-east-1")]
STATIC = [RegionTarget(region="eu-west-3", instance_ids=["i-1", "i-2"], addresses=["203.0.113.1", "203.0.113.2"])]


def test_latency_entry_alone_gives_each_region_a_latency_alias_tied_to_its_health_check():
    run = build_alone(lambda: LatencyEntry("alone", LatencyArgs(
        zone_id="Z0123456789ABCDEFGHIJ", name="turn.example.com", stun_port=3478, regions=BALANCED, tags=TAGS)))
    component(run, "stun-infra:endpoint:LatencyEntry")
    checks = {c.id: c for c in run.of_type("aws:route53/healthCheck:HealthCheck")}
    for record in run.of_type("aws:route53/record:Record"):
        region = record.inputs["setIdentifier"]
        assert record.inputs["latencyRoutingPolicies"] == [{"region": region}]
        assert checks[record.inputs["healthCheckId"]].inputs["fqdn"] == f"nlb.{region}.example"


def test_a_health_check_carries_only_the_stacks_own_tags():
    run = build_alone(lambda: LatencyEntry("alone", LatencyArgs(
        zone_id="Z0123456789ABCDEFGHIJ", name="turn.example.com", stun_port=3478, regions=STATIC,
        tags={**TAGS, **{f"team{i}": "x" for i in range(20)}})))
    assert {len(c.inputs["tags"]) for c in run.of_type("aws:route53/healthCheck:HealthCheck")} == {4}


def test_latency_entry_alone_answers_a_static_region_with_every_instance_address():
    run = build_alone(lambda: LatencyEntry("alone", LatencyArgs(
        zone_id="Z0123456789ABCDEFGHIJ", name="turn.example.com", stun_port=3478, regions=STATIC, tags=TAGS)))
    (record,) = run.of_type("aws:route53/record:Record")
    assert record.inputs["records"] == ["203.0.113.1", "203.0.113.2"]


def test_the_accelerator_alone_has_its_own_us_west_2_provider_and_a_group_per_region_and_listener():
    run = build_alone(lambda: GlobalAccelerator("alone", AcceleratorArgs(
        stun_port=3478, tls_ports=[443, 5349], regions=STATIC, tags=TAGS)))
    component(run, "stun-infra:endpoint:GlobalAccelerator")
    assert run.one("pulumi:providers:aws").inputs["region"] == "us-west-2"
    groups = run.of_type("aws:globalaccelerator/endpointGroup:EndpointGroup")
    assert len(groups) == 2
    assert all([c["endpointId"] for c in g.inputs["endpointConfigurations"]] == ["i-1", "i-2"] for g in groups)
