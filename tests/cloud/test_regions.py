"""Several regions, one deployment: a complete fleet per region, the home region as a one-region
stack has it, one TURN secret and one SSH key everywhere, and the global entry (latency records
with health checks, or the accelerator) in front."""

from __future__ import annotations

import pytest

from stun_infra.cloud.offline import run_offline, stack_config
from stun_infra.settings import ConfigError
from tests.cloud.urns import CASES, DNS, ONE_REGION
from tests.conftest import program

THREE = ["eu-west-3", "us-east-1", "ap-southeast-1"]
ADDED = THREE[1:]
CONCERNS = {"stun-infra:network:Network", "stun-infra:network:Firewall", "stun-infra:access:InstanceAccess",
            "stun-infra:secrets:ServerSecrets", "stun-infra:monitoring:ServerLogs",
            "stun-infra:monitoring:Monitoring", "stun-infra:artifact:InstancePackage", "stun-infra:access:SshKeyPair"}
STATIC = {"stun-infra:fleet:StaticFleet", "stun-infra:fleet:DrainDocument"}
AUTOSCALE = {"stun-infra:fleet:AutoscaleFleet", "stun-infra:endpoint:LoadBalancedEndpoint",
             "stun-infra:network:LoadBalancerFirewall", "stun-infra:fleet:ScaleInDrain", "stun-infra:fleet:LaunchHook",
             "stun-infra:endpoint:Ipv6TargetReconciler"}


def components_named(run, name: str) -> set[str]:
    return {r.type for r in run.registrations if not r.custom and r.name == name and r.type.startswith("stun-infra:")}


def region_of(run, registration) -> str:
    """The region an AWS resource is created in: its explicit provider's, else the home region."""
    if not registration.provider:
        return run.config["aws:region"]
    provider_id = registration.provider.rsplit("::", 1)[-1]
    (provider,) = [r for r in run.of_type("pulumi:providers:aws") if r.id == provider_id]
    return provider.inputs["region"]


@pytest.mark.parametrize("case", sorted(ONE_REGION))
def test_a_one_region_stack_uses_only_the_default_provider(case):
    stack, overrides = CASES[case]
    config, secret_keys = stack_config(stack, overrides)
    run = run_offline(config, stack=stack, secret_keys=secret_keys)
    assert [r.urn for r in run.registrations if r.provider or r.type.startswith("pulumi:providers:")] == []


@pytest.mark.parametrize("mode, fleet", [("static", STATIC), ("autoscale", AUTOSCALE)])
def test_each_region_gets_a_complete_fleet_named_by_region(mode, fleet):
    run = program(regions=THREE, mode=mode)
    assert components_named(run, "stun-infra-test") == CONCERNS | fleet | {"stun-infra:tls:TlsCertificate"}
    for region in ADDED:
        assert components_named(run, f"stun-infra-test-{region}") == \
            CONCERNS | fleet | {"stun-infra:tls:TlsCertificate", "stun-infra:region:RegionGroup"}


def test_every_resource_of_an_added_region_is_created_there():
    run = program(regions=THREE)
    groups = {r.urn: r.name for r in run.of_type("stun-infra:region:RegionGroup")}
    parents = {r.urn: r.parent for r in run.registrations}

    def group_of(urn: str) -> str | None:
        while urn:
            if urn in groups:
                return groups[urn]
            urn = parents.get(urn, "")
        return None

    regions = {}
    for r in run.registrations:
        if r.custom and r.type.startswith("aws:") and not r.type.startswith("pulumi:providers"):
            regions.setdefault(group_of(r.urn), set()).add(region_of(run, r))
    assert regions == {None: {"eu-west-3"}, "stun-infra-test-us-east-1": {"us-east-1"},
                       "stun-infra-test-ap-southeast-1": {"ap-southeast-1"}}


def test_the_home_region_of_a_multi_region_stack_keeps_its_names():
    one = {r.urn for r in program().registrations}
    three = {r.urn for r in program(regions=THREE).registrations}
    assert one <= three


def test_one_turn_secret_is_generated_and_stored_in_every_region():
    run = program(regions=THREE)
    assert len(run.of_type("random:index/randomPassword:RandomPassword")) == 1
    stored = [p for p in run.of_type("aws:ssm/parameter:Parameter") if p.inputs["name"].endswith("turn-shared-secret")]
    assert sorted(region_of(run, p) for p in stored) == sorted(THREE)
    assert len({p.inputs["value"] for p in stored}) == 1 and len({p.inputs["name"] for p in stored}) == 1
    assert all("value" in p.secret_inputs for p in stored)


def test_a_rotation_puts_the_current_and_previous_secret_in_every_region():
    current, previous = "c" * 20 + "urrent-secret-0123456789", "p" * 20 + "revious-secret-012345678"
    run = program(regions=THREE, turnSecret=current, turnSecretPrevious=previous,
                  turnSecretRotatedAt="2026-12-05T00:15:00Z", secret_keys=("turnSecret", "turnSecretPrevious"))
    values = {}
    for p in run.of_type("aws:ssm/parameter:Parameter"):
        if "turn-shared-secret" in p.inputs["name"]:
            values.setdefault(p.inputs["name"].rsplit("/", 1)[-1], set()).add((region_of(run, p), p.inputs["value"]))
    assert values["turn-shared-secret"] == {(r, current) for r in THREE}
    assert values["turn-shared-secret-previous"] == {(r, previous) for r in THREE}


def test_one_ssh_key_opens_every_regions_instances():
    run = program(regions=THREE)
    assert len(run.of_type("tls:index/privateKey:PrivateKey")) == 1 + len(THREE)  # + each self-signed certificate
    keys = run.of_type("aws:ec2/keyPair:KeyPair")
    assert sorted(region_of(run, k) for k in keys) == sorted(THREE)
    assert len({k.inputs["publicKey"] for k in keys}) == 1


def test_an_added_region_that_does_not_offer_the_type_names_the_override():
    with pytest.raises(ConfigError) as caught:
        program(regions=["us-east-1", "eu-west-3"], instanceType="c7gn.medium", **{"aws:region": "us-east-1"})
    (problem,) = caught.value.problems
    assert problem.startswith("stun-infra:instanceType: got c7gn.medium, which region eu-west-3 offers in 0 zones")
    assert problem.endswith('stun-infra:regionOverrides ["eu-west-3:instanceType=TYPE"]')


def test_a_region_override_launches_that_regions_instances_with_its_type():
    run = program(regions=["us-east-1", "eu-west-3"], instanceType="c7gn.medium",
                  regionOverrides=["eu-west-3:instanceType=c6gn.medium"], **{"aws:region": "us-east-1"})
    types = {(region_of(run, i), i.inputs["instanceType"]) for i in run.of_type("aws:ec2/instance:Instance")}
    assert types == {("us-east-1", "c7gn.medium"), ("eu-west-3", "c6gn.medium")}


def test_an_overridden_type_a_region_does_not_offer_names_the_override():
    with pytest.raises(ConfigError) as caught:
        program(regions=THREE, regionOverrides=["us-east-1:instanceType=c7gn.medium"],
                **{"aws:region": "eu-west-3"}, instanceType="t4g.small",
                offered_zones={"c7gn.medium": []})
    (problem,) = caught.value.problems
    assert problem.startswith("stun-infra:regionOverrides (us-east-1:instanceType): got c7gn.medium")


def test_the_certificates_cover_the_global_name_and_every_regions_name():
    run = program(regions=THREE, mode="autoscale", **DNS)
    names = ["turn.example.com", *(f"{r}.turn.example.com" for r in THREE)]
    certificates = run.of_type("aws:acm/certificate:Certificate")
    assert sorted(region_of(run, c) for c in certificates) == sorted(THREE)
    assert all([c.inputs["domainName"], *c.inputs["subjectAlternativeNames"]] == names for c in certificates)


def test_validation_records_are_written_once_and_every_region_waits_for_them():
    run = program(regions=THREE, mode="autoscale", **DNS)
    validation = [r for r in run.of_type("aws:route53/record:Record") if "-acm-validation" in r.name]
    assert len(validation) == 4 and all(r.name.startswith("stun-infra-test-acm-validation") for r in validation)
    fqdns = sorted(r.state["fqdn"] for r in validation)
    for done in run.of_type("aws:acm/certificateValidation:CertificateValidation"):
        assert sorted(done.inputs["validationRecordFqdns"]) == fqdns


def latency_records(run):
    return [r for r in run.of_type("aws:route53/record:Record") if r.inputs.get("latencyRoutingPolicies")]


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_dns_name_answers_with_the_nearest_healthy_region(mode):
    run = program(regions=THREE, mode=mode, **DNS)
    records = latency_records(run)
    assert {(r.inputs["name"], r.inputs["type"]) for r in records} == {("turn.example.com", "A"),
                                                                       ("turn.example.com", "AAAA")}
    assert sorted({(r.inputs["setIdentifier"], r.inputs["latencyRoutingPolicies"][0]["region"])
                   for r in records}) == sorted((r, r) for r in THREE)
    checks = {c.id: c for c in run.of_type("aws:route53/healthCheck:HealthCheck")}
    for record in records:
        check = checks[record.inputs["healthCheckId"]]
        assert check.inputs["type"] == ("TCP" if mode == "autoscale" else "CALCULATED")


def test_an_autoscale_regions_health_check_is_tcp_on_its_load_balancers_stun_port():
    run = program(regions=THREE, mode="autoscale", **DNS)
    checks = run.of_type("aws:route53/healthCheck:HealthCheck")
    balancers = {b.state["dnsName"] for b in run.of_type("aws:lb/loadBalancer:LoadBalancer")}
    assert sorted((c.inputs["type"], c.inputs["port"]) for c in checks) == [("TCP", 3478)] * 3
    assert {c.inputs["fqdn"] for c in checks} == balancers


def test_a_static_region_is_healthy_while_one_of_its_instances_answers():
    run = program(regions=THREE, **DNS)
    checks = run.of_type("aws:route53/healthCheck:HealthCheck")
    per_instance = [c for c in checks if c.inputs["type"] == "TCP"]
    eips = {e.state["publicIp"] for e in run.of_type("aws:ec2/eip:Eip")}
    assert {c.inputs["ipAddress"] for c in per_instance} == eips and {c.inputs["port"] for c in per_instance} == {3478}
    calculated = [c for c in checks if c.inputs["type"] == "CALCULATED"]
    assert len(calculated) == 3 and {c.inputs["childHealthThreshold"] for c in calculated} == {1}


def test_each_region_answers_at_its_own_name_and_the_uris_lead_with_the_global_one():
    run = program(regions=THREE, mode="autoscale", **DNS)
    aliases = {r.inputs["name"] for r in run.of_type("aws:route53/record:Record") if r.name.endswith("-alias")}
    assert aliases == {f"{r}.turn.example.com" for r in THREE}
    assert run.outputs["stun_uris"][0] == "stun:turn.example.com:3478"
    assert run.outputs["global_stun_uris"] == ["stun:turn.example.com:3478"]
    assert set(run.outputs["regions"]) == set(THREE)
    assert run.outputs["regions"]["us-east-1"]["stun_uris"] == ["stun:us-east-1.turn.example.com:3478"]


def accelerator_run(**config):
    return program(regions=THREE, globalAccelerator="true", **config)


def test_the_accelerators_api_is_reached_in_us_west_2():
    run = accelerator_run()
    for typ in ("Accelerator", "Listener", "EndpointGroup"):
        for r in run.of_type(f"aws:globalaccelerator/{typ.lower()[0] + typ[1:]}:{typ}"):
            assert region_of(run, r) == "us-west-2"


def test_the_accelerator_listens_for_stun_and_turn_over_udp_and_tcp_and_for_tls():
    run = accelerator_run()
    ports = {l.inputs["protocol"]: sorted(p["fromPort"] for p in l.inputs["portRanges"])
             for l in run.of_type("aws:globalaccelerator/listener:Listener")}
    assert ports == {"UDP": [3478], "TCP": [3478, 5349]}


@pytest.mark.parametrize("mode, endpoint", [("static", "aws:ec2/instance:Instance"),
                                            ("autoscale", "aws:lb/loadBalancer:LoadBalancer")])
def test_one_endpoint_group_per_region_and_listener_preserves_client_addresses(mode, endpoint):
    run = accelerator_run(mode=mode, **({"ipv6": "false"} if mode == "autoscale" else {}))
    groups = run.of_type("aws:globalaccelerator/endpointGroup:EndpointGroup")
    assert sorted(g.inputs["endpointGroupRegion"] for g in groups) == sorted(THREE * 2)
    configurations = [c for g in groups for c in g.inputs["endpointConfigurations"]]
    assert {c["clientIpPreservationEnabled"] for c in configurations} == {True}
    ids = {r.state.get("arn") if mode == "autoscale" else r.id for r in run.of_type(endpoint)}
    assert {c["endpointId"] for c in configurations} == ids


def test_with_a_zone_dns_name_is_an_alias_of_the_accelerator():
    run = accelerator_run(**DNS)
    (alias,) = [r for r in run.of_type("aws:route53/record:Record") if r.name.endswith("-accelerator-alias")]
    accelerator = run.one("aws:globalaccelerator/accelerator:Accelerator")
    assert alias.inputs["name"] == "turn.example.com"
    assert alias.inputs["aliases"][0]["name"] == accelerator.state["dnsName"]
    assert latency_records(run) == []


def test_without_a_zone_the_uris_lead_with_the_accelerators_name():
    run = accelerator_run()
    name = run.one("aws:globalaccelerator/accelerator:Accelerator").state["dnsName"]
    assert run.outputs["stun_uris"][0] == f"stun:{name}:3478"
    assert run.outputs["accelerator_addresses"] and run.outputs["accelerator_dns_name"] == name


SIMPLE_ALIAS = {"name": "turn.example.com.", "type": "A", "aliasTarget": {"dnsName": "nlb.example", "hostedZoneId": "Z1"}}
LATENCY = {"name": "turn.example.com.", "type": "A", "setIdentifier": "eu-west-3", "region": "eu-west-3"}


def test_going_to_several_regions_over_a_one_region_name_is_refused_with_the_two_run_switch():
    with pytest.raises(ConfigError) as caught:
        program(regions=THREE, mode="autoscale", record_sets=(SIMPLE_ALIAS,), **DNS)
    (problem,) = caught.value.problems
    assert problem.startswith("stun-infra:dnsName: zone Z0123456789ABCDEFGHIJ already holds simple A records for "
                              "turn.example.com, and this stack needs latency records, one per region there")
    assert "Switch in two runs" in problem


def test_a_multi_region_stacks_own_latency_records_are_no_conflict():
    run = program(regions=THREE, mode="autoscale", record_sets=(LATENCY,), **DNS)
    assert latency_records(run)


def test_the_accelerator_needs_a_simple_alias_at_dns_name():
    with pytest.raises(ConfigError) as caught:
        program(regions=THREE, globalAccelerator="true", record_sets=(LATENCY,), **DNS)
    assert "this stack needs a simple alias of the accelerator there" in caught.value.problems[0]


def test_one_dashboard_shows_every_region_side_by_side():
    import json
    run = program(regions=THREE)
    (dashboard,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert region_of(run, dashboard) == "eu-west-3" and dashboard.inputs["dashboardName"] == "stun-infra-test"
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    columns: dict[str, set[int]] = {}
    for w in widgets:
        columns.setdefault(w["properties"]["region"], set()).add(w["x"])
        assert w["properties"]["title"].startswith(w["properties"]["region"] + ": ")
    assert sorted(columns) == sorted(THREE) and all(len(x) == 1 for x in columns.values())
    assert len({next(iter(x)) for x in columns.values()}) == 3  # three columns, one per region
    instances = {r.id: region_of(run, r) for r in run.of_type("aws:ec2/instance:Instance")}
    cpu = [w for w in widgets if "CPU" in w["properties"]["title"]]
    for w in cpu:
        assert {instances[row[3]] for row in w["properties"]["metrics"]} == {w["properties"]["region"]}


def test_alarms_stay_in_their_region_with_its_own_topic():
    run = program(regions=THREE)
    topics = {t.urn: region_of(run, t) for t in run.of_type("aws:sns/topic:Topic")}
    assert sorted(topics.values()) == sorted(THREE)
    for alarm in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        (action,) = alarm.inputs["alarmActions"]
        assert f":{region_of(run, alarm)}:" in action


def test_every_regions_dashboard_url_is_the_one_dashboard():
    run = program(regions=THREE)
    urls = {v["dashboard_url"] for v in run.outputs["regions"].values()}
    assert urls == {run.outputs["dashboard_url"]} and "region=eu-west-3" in run.outputs["dashboard_url"]


def test_an_added_regions_names_fit_awss_limits_with_the_longest_stack_name():
    from tests.support import aws_constraints as ac
    config, secret_keys = stack_config("dev", {"regions": '["eu-west-3", "ap-southeast-1", "ap-northeast-3"]',
                                               "mode": "autoscale", **DNS})
    run = run_offline(config, stack="a" * 40, secret_keys=secret_keys)
    assert [str(v) for v in ac.violations(run)] == []
    groups = sorted(g.name for g in run.of_type("stun-infra:region:RegionGroup"))
    assert sorted(g[-14:] for g in groups) == ["ap-northeast-3", "ap-southeast-1"]
    assert all(len(g) <= len("stun-infra-") + 40 for g in groups)


NLB_ALIAS = {"name": "turn.example.com.", "type": "A",
             "aliasTarget": {"dnsName": "stun-infra-test-nlb-1.elb.eu-west-3.amazonaws.com.", "hostedZoneId": "Z1"}}
ACCELERATOR_ALIAS = {"name": "turn.example.com.", "type": "A",
                     "aliasTarget": {"dnsName": "a1234.awsglobalaccelerator.com.", "hostedZoneId": "Z2BJ6XQ5FK7U4H"}}
AUTOSCALE_IPV4 = {"mode": "autoscale", "ipv6": "false"}


def with_own_certificate() -> dict:
    """Autoscale with the accelerator and a zone: coturn ends TLS with your certificate (an NLB
    that ended TLS would not keep client addresses)."""
    from tests.support.certs import make_ca
    issued = make_ca().issue("turn.example.com", "*.turn.example.com")
    return {"tlsCertificate": issued.cert_pem, "tlsPrivateKey": issued.key_pem, "secret_keys": ("tlsPrivateKey",)}


def test_turning_the_accelerator_on_over_a_load_balancers_alias_is_refused():
    with pytest.raises(ConfigError) as caught:
        program(globalAccelerator="true", record_sets=(NLB_ALIAS,), **AUTOSCALE_IPV4, **DNS, **with_own_certificate())
    assert "simple A (alias of stun-infra-test-nlb-1.elb.eu-west-3.amazonaws.com) records" in \
        caught.value.problems[0]


def test_turning_the_accelerator_off_over_its_alias_is_refused():
    with pytest.raises(ConfigError) as caught:
        program(record_sets=(ACCELERATOR_ALIAS,), **AUTOSCALE_IPV4, **DNS)
    assert "simple A (alias of a1234.awsglobalaccelerator.com) records" in caught.value.problems[0]


def test_the_accelerators_own_alias_is_no_conflict():
    run = program(globalAccelerator="true", record_sets=(ACCELERATOR_ALIAS,), **AUTOSCALE_IPV4, **DNS,
                  **with_own_certificate())
    assert run.of_type("aws:globalaccelerator/accelerator:Accelerator")
