"""`regions`, `regionOverrides`, `optInRegions` and `globalAccelerator`: each bad input refused
before any resource, in one line naming the key, what it got and what is allowed."""

from __future__ import annotations

import json

import pytest

from stun_infra.settings import ConfigError, load_settings

HOME = "eu-west-3"
THREE = ["eu-west-3", "us-east-1", "ap-southeast-1"]


def load(**raw):
    return load_settings({k: json.dumps(v) if isinstance(v, list) else v for k, v in raw.items()},
                         stack="test", region=HOME)


def only_problem(**raw) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**raw)
    assert len(caught.value.problems) == 1, caught.value.problems
    (problem,) = caught.value.problems
    assert "\n" not in problem
    return problem


def test_by_default_the_stack_deploys_to_its_home_region_alone():
    s = load()
    assert (s.deploy_regions, s.multi_region, s.global_entry) == ((HOME,), False, False)


def test_listed_regions_deploy_the_home_region_first():
    assert load(regions=["us-east-1", HOME]).deploy_regions == (HOME, "us-east-1")


def test_a_region_listed_twice_is_refused():
    assert only_problem(regions=[HOME, "us-east-1", "us-east-1"]).startswith(
        'stun-infra:regions: got ["eu-west-3", "us-east-1", "us-east-1"], lists us-east-1 twice')


def test_an_unknown_region_is_refused_with_the_nearest_name():
    problem = only_problem(regions=[HOME, "us-east-7"])
    assert problem.startswith('stun-infra:regions: got ["eu-west-3", "us-east-7"], lists "us-east-7", which is not '
                              "an AWS region; did you mean us-east-")


def test_a_region_of_another_partition_is_refused():
    assert "a region of the aws-cn partition" in only_problem(regions=[HOME, "cn-north-1"])


def test_the_list_must_hold_the_home_region():
    problem = only_problem(regions=["us-east-1"])
    assert problem.startswith("stun-infra:regions: does not list aws:region (eu-west-3), the home region")


def test_an_opt_in_region_is_refused_until_the_account_says_it_enabled_it():
    problem = only_problem(regions=[HOME, "af-south-1"])
    assert problem.startswith("stun-infra:regions: lists af-south-1, an opt-in region")
    assert "stun-infra:optInRegions" in problem
    assert load(regions=[HOME, "af-south-1"], optInRegions=["af-south-1"]).deploy_regions == (HOME, "af-south-1")


def test_a_region_enabled_everywhere_is_not_an_opt_in_region():
    assert only_problem(regions=[HOME, "us-east-1"], optInRegions=["us-east-1"]).startswith(
        'stun-infra:optInRegions: got ["us-east-1"], lists us-east-1, which is enabled in every account')


def test_an_opt_in_region_not_deployed_to_would_be_ignored():
    assert only_problem(optInRegions=["af-south-1"]).startswith(
        "stun-infra:optInRegions: lists af-south-1, which stun-infra:regions does not list")


def test_a_region_override_sets_that_regions_instance_type_and_vpc_range():
    s = load(regions=THREE, regionOverrides=["us-east-1:instanceType=c6i.large", "us-east-1:vpcCidr=10.43.0.0/16"])
    east = s.for_region("us-east-1")
    assert (east.instance_type, east.vpc_cidr, east.architecture) == ("c6i.large", "10.43.0.0/16", "x86_64")
    assert (s.for_region(HOME).instance_type, s.for_region(HOME).vpc_cidr) == (s.instance_type, s.vpc_cidr)


@pytest.mark.parametrize("entry, says", [
    ("us-east-1=c6i.large", "is not REGION:KEY=VALUE"),
    ("us-east-1:mode=autoscale", "mode cannot differ by region; keys: instanceType, vpcCidr"),
    ("us-east-1:instanceType=big", "instanceType must be an EC2 instance type"),
    ("us-east-1:vpcCidr=8.8.0.0/16", "vpcCidr must be a private (RFC 1918) range"),
    ("mars-1:instanceType=c6i.large", 'lists "mars-1", which is not an AWS region'),
])
def test_a_malformed_override_is_refused(entry, says):
    problem = only_problem(regions=THREE, regionOverrides=[entry])
    assert problem.startswith("stun-infra:regionOverrides: got ") and says in problem


def test_an_override_given_twice_for_one_region_is_refused():
    assert "sets instanceType for us-east-1 twice" in only_problem(
        regions=THREE, regionOverrides=["us-east-1:instanceType=c6i.large", "us-east-1:instanceType=c7i.large"])


def test_an_override_for_a_region_not_deployed_to_would_be_ignored():
    assert only_problem(regionOverrides=["us-east-1:instanceType=c6i.large"]).startswith(
        "stun-infra:regionOverrides: sets instanceType for us-east-1, which stun-infra:regions does not list")


def test_an_added_region_carries_its_name_and_the_home_region_keeps_the_stacks():
    s = load(regions=THREE)
    assert [s.for_region(r).prefix for r in THREE] == [
        "stun-infra-test", "stun-infra-test-us-east-1", "stun-infra-test-ap-southeast-1"]


def test_with_a_global_entry_each_region_has_its_own_name_under_dns_name():
    s = load(regions=THREE, dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
    assert s.for_region("us-east-1").region_dns_name == "us-east-1.turn.example.com"
    assert s.regional_dns_names == tuple(f"{r}.turn.example.com" for r in THREE)
    assert load(dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com").region_dns_name == "turn.example.com"


def test_more_regions_than_the_accelerator_has_endpoint_groups_for_are_refused():
    regions = [HOME, *sorted({"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
                              "eu-west-1", "eu-west-2", "eu-central-1", "eu-north-1", "ap-south-1",
                              "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
                              "ap-southeast-2"})]
    optin = ["af-south-1", "ap-east-1", "ap-south-2", "ap-southeast-3", "ap-southeast-4", "ca-west-1"]
    problem = only_problem(regions=regions + optin, optInRegions=optin, globalAccelerator="true")
    assert problem.startswith("stun-infra:globalAccelerator: 23 regions need 46 endpoint groups")
    assert load(regions=(regions + optin)[:21], optInRegions=optin[:4], globalAccelerator="true").global_entry


def test_the_accelerator_refuses_more_static_instances_than_an_endpoint_group_holds():
    assert only_problem(globalAccelerator="true", instanceCount="11").startswith(
        "stun-infra:globalAccelerator: static mode makes each instance an endpoint")


def test_the_accelerator_refuses_a_load_balancer_that_ends_tls():
    problem = only_problem(globalAccelerator="true", mode="autoscale", ipv6="false",
                           dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
    assert problem.startswith("stun-infra:globalAccelerator: autoscale mode with stun-infra:dnsZoneId ends TLS")


def test_the_accelerator_refuses_a_dualstack_load_balancer():
    assert only_problem(globalAccelerator="true", mode="autoscale").startswith(
        "stun-infra:globalAccelerator: autoscale mode with stun-infra:ipv6")


def test_the_accelerator_takes_an_ipv4_load_balancer_that_passes_tls_through():
    assert load(globalAccelerator="true", mode="autoscale", ipv6="false").global_entry


def with_certificate(issued, **raw):
    return load_settings({"tlsCertificate": issued.cert_pem, "tlsPrivateKey": issued.key_pem,
                          **{k: json.dumps(v) if isinstance(v, list) else v for k, v in raw.items()}},
                         stack="test", region=HOME, secret_keys={"stun-infra:tlsPrivateKey"})


def test_your_certificate_must_also_name_each_regions_own_name():
    from tests.support.certs import make_ca
    issued = make_ca().issue("turn.example.com")
    with pytest.raises(ConfigError) as caught:
        with_certificate(issued, regions=THREE, dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
    (problem,) = caught.value.problems
    assert problem.startswith("stun-infra:tlsCertificate: names turn.example.com, not eu-west-3.turn.example.com, "
                              "us-east-1.turn.example.com, ap-southeast-1.turn.example.com")


def test_a_wildcard_under_dns_name_covers_every_regions_name():
    from tests.support.certs import make_ca
    issued = make_ca().issue("turn.example.com", "*.turn.example.com")
    s = with_certificate(issued, regions=THREE, dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
    assert s.regional_dns_names == tuple(f"{r}.turn.example.com" for r in THREE)
