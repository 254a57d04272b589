"""Stable endpoints: an NLB in autoscale mode, Elastic IPs in static mode, optional DNS."""

from __future__ import annotations

import pytest

from tests.conftest import inputs_of, program

LB = "aws:lb/loadBalancer:LoadBalancer"
TG = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
GROUP = "aws:autoscaling/group:Group"
RECORD = "aws:route53/record:Record"
ZONE = "Z0123456789ABCDEFGHIJ"


def address_records(run):
    """The endpoint's A records (the zone also gets ACM's validation CNAME)."""
    return [r for r in inputs_of(run, RECORD) if r["type"] == "A"]


def test_load_balancer_is_an_internet_facing_nlb_across_every_subnet(autoscale_run):
    (lb,) = inputs_of(autoscale_run, LB)
    assert lb["loadBalancerType"] == "network" and lb["internal"] is False
    assert len(lb["subnets"]) == 3 and lb["enableCrossZoneLoadBalancing"] is True


def test_load_balancer_waits_for_the_internet_gateway_and_public_routes(autoscale_run):
    (lb,) = autoscale_run.of_type(LB)
    needed = {r.urn for r in autoscale_run.of_type("aws:ec2/internetGateway:InternetGateway")
              + autoscale_run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")}
    assert len(needed) == 4 and needed <= lb.dependencies


def test_listeners_carry_stun_over_udp_and_tcp_and_pass_tls_through(autoscale_run):
    assert {(l["protocol"], int(l["port"])) for l in inputs_of(autoscale_run, LISTENER)} == {
        ("TCP_UDP", 3478), ("TCP", 5349)}


def test_each_listener_forwards_to_its_own_target_group(autoscale_run):
    groups = {r.state["arn"]: r.inputs for r in autoscale_run.of_type(TG)}
    for listener in inputs_of(autoscale_run, LISTENER):
        (action,) = listener["defaultActions"]
        target = groups[action["targetGroupArn"]]
        assert action["type"] == "forward" and target["port"] == listener["port"]
        assert target["protocol"] == listener["protocol"]


def test_target_groups_check_health_over_tcp_because_nlbs_cannot_check_udp(autoscale_run):
    checks = {(t["protocol"], int(t["port"])): t["healthCheck"] for t in inputs_of(autoscale_run, TG)}
    assert checks[("TCP_UDP", 3478)]["protocol"] == "TCP" and checks[("TCP_UDP", 3478)]["port"] == "traffic-port"
    assert checks[("TCP", 5349)]["protocol"] == "TCP"


def test_health_checks_set_their_timeout_inside_awss_range_and_below_the_interval(autoscale_run):
    """NLB health checks take a timeout of 2-120 s; left out, AWS picks 10 s for TCP."""
    for group in inputs_of(autoscale_run, TG):
        check = group["healthCheck"]
        assert 2 <= check["timeout"] < check["interval"], check


def test_target_groups_end_a_deregistered_targets_flows_so_a_second_up_changes_nothing(autoscale_run):
    """AWS turns connection termination on by default for UDP/TCP_UDP groups and the provider
    sends the attribute on create only when true: anything but true there is a diff forever."""
    groups = inputs_of(autoscale_run, TG)
    assert {g["protocol"] for g in groups} == {"TCP_UDP", "TCP"}
    assert all(g["connectionTermination"] is True for g in groups)


def test_target_groups_preserve_the_client_address(autoscale_run):
    groups = inputs_of(autoscale_run, TG)
    assert all(t["preserveClientIp"] == "true" for t in groups)
    # IPv4 clients through instance targets; IPv6 clients through IPv6 IP targets (test_dual_stack)
    assert sorted((t["targetType"], t.get("ipAddressType")) for t in groups) == [
        ("instance", None), ("instance", None), ("ip", "ipv6"), ("ip", "ipv6")]


def test_group_registers_through_the_target_groups_with_elb_health_checks(autoscale_run):
    (group,) = inputs_of(autoscale_run, GROUP)
    assert sorted(group["targetGroupArns"]) == sorted(
        r.state["arn"] for r in autoscale_run.of_type(TG) if r.inputs["targetType"] == "instance")
    assert group["healthCheckType"] == "ELB" and group["healthCheckGracePeriod"] == 300


def test_instance_refresh_keeps_the_configured_healthy_percentage():
    run = program(mode="autoscale", minHealthyPercentage=75, healthCheckGracePeriod=240)
    (group,) = inputs_of(run, GROUP)
    refresh = group["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["minHealthyPercentage"] == 75 and refresh["preferences"]["instanceWarmup"] == "240"
    assert group["healthCheckGracePeriod"] == 240


def test_autoscale_uris_use_the_load_balancers_name(autoscale_run):
    dns = autoscale_run.outputs["load_balancer_dns_name"]
    assert autoscale_run.outputs["stun_uris"] == [f"stun:{dns}:3478"]
    assert f"turns:{dns}:5349?transport=tcp" in autoscale_run.outputs["turn_uris"]


def test_long_stack_names_still_give_aws_names_that_fit():
    run = program(stack="production-eu-west-1", mode="autoscale")
    names = [r.name for r in run.of_type(LB) + run.of_type(TG)]
    assert len(set(names)) == 5  # the NLB, the stun and tls groups, and their IPv6 twins
    assert all(len(n) + len("-1234567") <= 32 for n in names), names  # Pulumi adds -<7 random characters>
    assert all(n.startswith("stun-infra-") for n in names), names


def test_static_mode_has_no_load_balancer(static_run):
    assert static_run.of_type(LB) == [] and static_run.of_type(TG) == []


def test_no_dns_record_without_dns_config(any_run):
    assert any_run.of_type(RECORD) == []


def test_autoscale_dns_is_an_alias_to_the_nlb():
    run = program(mode="autoscale", dnsZoneId=ZONE, dnsName="turn.example.com")
    (record,) = address_records(run)
    (lb,) = run.of_type(LB)
    assert (record["zoneId"], record["name"], record["type"]) == (ZONE, "turn.example.com", "A")
    (alias,) = record["aliases"]
    assert alias["name"] == lb.state["dnsName"] and alias["zoneId"] == lb.state["zoneId"]
    assert run.outputs["stun_uris"] == ["stun:turn.example.com:3478"]


def test_static_dns_is_one_multivalue_a_record_per_instance():
    run = program(instanceCount=3, dnsZoneId=ZONE, dnsName="turn.example.com")
    records = address_records(run)
    eips = sorted(r.state["publicIp"] for r in run.of_type("aws:ec2/eip:Eip"))
    assert sorted(r["records"][0] for r in records) == eips
    assert all(r["multivalueAnswerRoutingPolicy"] is True and r["name"] == "turn.example.com" for r in records)
    assert len({r["setIdentifier"] for r in records}) == 3
    assert run.outputs["stun_uris"] == ["stun:turn.example.com:3478"]


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_turn_uris_use_the_dns_name_when_configured(mode):
    run = program(mode=mode, dnsZoneId=ZONE, dnsName="turn.example.com")
    assert {u.split(":")[1] for u in run.outputs["turn_uris"]} == {"turn.example.com"}


# -- switching mode with dnsName: Route 53 keeps one routing policy per name and type ----------

def multivalue(kind: str, i: int) -> dict:
    return {"name": "turn.example.com.", "type": kind, "setIdentifier": f"stun-infra-test{'-v6' if kind == 'AAAA' else ''}-{i}",
            "multiValueAnswer": True, "ttl": 60}


ALIAS = {"name": "turn.example.com.", "type": "A", "aliasTarget": {"name": "nlb.example", "zoneId": "Z1"}}


@pytest.mark.parametrize("mode, existing, found", [
    ("autoscale", (multivalue("A", 0), multivalue("A", 1), multivalue("AAAA", 0)), "multivalue A, multivalue AAAA"),
    ("static", (ALIAS,), "simple A"),
    ("static", ({"name": "turn.example.com.", "type": "CNAME", "ttl": 300},), "simple CNAME"),
])
def test_a_switch_of_mode_with_dns_is_refused_with_the_steps_before_any_resource(mode, existing, found, monkeypatch):
    from stun_infra.cloud.offline import RecordingMonitor
    from stun_infra.settings import ConfigError
    created: list[str] = []
    original = RecordingMonitor.RegisterResource
    monkeypatch.setattr(RecordingMonitor, "RegisterResource",
                        lambda self, request: created.append(request.type) or original(self, request))
    with pytest.raises(ConfigError) as caught:
        program(mode=mode, dnsZoneId=ZONE, dnsName="turn.example.com", record_sets=existing)
    (message,) = caught.value.problems
    assert message.startswith(f"stun-infra:dnsName: zone {ZONE} already holds {found} records for turn.example.com")
    assert "pulumi config rm stun-infra:dnsName" in message and "set both keys again and `pulumi up`" in message
    assert [t for t in created if t != "pulumi:pulumi:Stack"] == []


@pytest.mark.parametrize("mode, existing", [
    ("static", (multivalue("A", 0), multivalue("A", 1), multivalue("AAAA", 0))),  # its own, from the last run
    ("autoscale", (ALIAS,)),
    ("autoscale", ({"name": "other.example.com.", "type": "A", "setIdentifier": "x", "multiValueAnswer": True},
                   {"name": "_x.turn.example.com.", "type": "CNAME", "ttl": 300})),  # other names
])
def test_records_of_the_same_mode_or_other_names_do_not_stop_a_run(mode, existing):
    run = program(mode=mode, dnsZoneId=ZONE, dnsName="turn.example.com", record_sets=existing)
    assert run.of_type(RECORD)
    (call,) = [a for token, a in run.calls if token == "aws:route53/getRecords:getRecords"]
    assert call["zoneId"] == ZONE and call["nameRegex"] == "^turn\\.example\\.com\\.?$"
