"""Dual stack (`stun-infra:ipv6`, on by default) under mocks, and the off switch.

On: the VPC asks for an Amazon-provided /56, each subnet takes its own /64 of it and
hands addresses out on launch, ::/0 routes through the internet gateway, every instance
(static or from the launch template) gets one IPv6 address, the security group opens to
::/0 exactly what it opens to 0.0.0.0/0, and DNS publishes AAAA records beside the A
records. Off: not one resource input names IPv6, and the URNs are the IPv4 stack's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from stun_infra.cloud.components.network import subnet_ipv6_cidr
from stun_infra.settings import ConfigError

from tests.cloud.test_program import SG_RULE, ingress
from tests.conftest import inputs_of, program

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTES = "aws:ec2/routeTable:RouteTable"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
RECORD = "aws:route53/record:Record"
DNS = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}


@pytest.fixture(scope="module")
def static_dns_run():
    return program(instanceCount=3, **DNS)


def _vpc_block(run) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(run.one(VPC).state["ipv6CidrBlock"])


def test_the_vpc_asks_amazon_for_an_ipv6_block(static_run):
    assert static_run.one(VPC).inputs["assignGeneratedIpv6CidrBlock"] is True


def test_each_subnet_takes_its_own_slash_64_of_the_vpc_block(autoscale_run):
    blocks = [ipaddress.IPv6Network(s["ipv6CidrBlock"]) for s in inputs_of(autoscale_run, SUBNET)]
    assert len(blocks) == 3 and len(set(blocks)) == 3
    assert all(b.prefixlen == 64 and b.subnet_of(_vpc_block(autoscale_run)) for b in blocks)


def test_subnets_give_every_launched_instance_an_ipv6_address(any_run):
    assert all(s["assignIpv6AddressOnCreation"] is True for s in inputs_of(any_run, SUBNET))


def test_ipv6_internet_traffic_routes_through_the_internet_gateway(static_run):
    routes = static_run.one(ROUTES).inputs["routes"]
    gateway = static_run.one("aws:ec2/internetGateway:InternetGateway").id
    assert {(r.get("cidrBlock"), r.get("ipv6CidrBlock"), r["gatewayId"]) for r in routes} == {
        ("0.0.0.0/0", None, gateway), (None, "::/0", gateway)}


def test_the_nth_slash_64_is_carved_from_the_vpc_block():
    assert subnet_ipv6_cidr("2600:1f18:abc:de00::/56", 0) == "2600:1f18:abc:de00::/64"
    assert subnet_ipv6_cidr("2600:1f18:abc:de00::/56", 5) == "2600:1f18:abc:de05::/64"
    with pytest.raises(ValueError):
        subnet_ipv6_cidr("2600:1f18:abc:de00::/56", 256)


def test_every_static_instance_gets_one_ipv6_address(static_run):
    assert [i.get("ipv6AddressCount") for i in inputs_of(static_run, INSTANCE)] == [1, 1, 1]


def test_the_launch_template_gives_each_instance_one_ipv6_address(autoscale_run):
    (interface,) = autoscale_run.one(LAUNCH_TEMPLATE).inputs["networkInterfaces"]
    assert interface["ipv6AddressCount"] == 1


@pytest.mark.parametrize("mode", ["static", "autoscale", "stun-only"])
def test_every_ipv4_opening_to_the_internet_is_mirrored_for_ipv6(mode):
    """In each security group; behind the NLB an IPv4 port from its group is open to ::/0 for
    IPv6 clients, who reach the instances through IP targets with their own address."""
    run = program(**{"static": {}, "autoscale": {"mode": "autoscale"}, "stun-only": {"turn": "false"}}[mode])
    by_group: dict[str, list[dict]] = {}
    for rule in inputs_of(run, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        by_group.setdefault(rule["securityGroupId"], []).append(rule)
    assert len(by_group) == (2 if mode == "autoscale" else 1)
    for rules in by_group.values():
        # ICMP's messages differ by family (path MTU discovery: tests/cloud/test_load_balancer_firewall.py).
        transport = [r for r in rules if r["ipProtocol"] in ("tcp", "udp")]
        v4 = {(r["ipProtocol"], r["fromPort"], r["toPort"]) for r in transport
              if r.get("cidrIpv4") == "0.0.0.0/0" or "referencedSecurityGroupId" in r}
        v6 = {(r["ipProtocol"], r["fromPort"], r["toPort"]) for r in transport if r.get("cidrIpv6") == "::/0"}
        assert v4 == v6 and len(v4) >= 3


def test_ssh_opens_only_to_the_listed_ipv6_cidr_never_to_all_of_ipv6():
    run = program(sshAllowedCidrs='["2001:db8:1234::/48", "203.0.113.7/32"]')
    ssh = {cidr for p, lo, hi, cidr in ingress(run) if lo == 22}
    assert ssh == {"2001:db8:1234::/48", "203.0.113.7/32"}


def test_the_instances_may_reach_ipv6_peers(static_run):
    assert {(e.get("cidrIpv4"), e.get("cidrIpv6")) for e in inputs_of(static_run, EGRESS)} == {
        ("0.0.0.0/0", None), (None, "::/0")}


def test_every_ipv6_rule_description_is_one_aws_accepts(static_run):
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:/()#,@[]+=&;{}!$*")
    descriptions = [r["description"] for r in inputs_of(static_run, SG_RULE) + inputs_of(static_run, EGRESS)]
    assert [d for d in descriptions if not set(d) <= allowed] == []


def test_one_aaaa_record_per_static_instance_beside_its_a_record(static_dns_run):
    records = inputs_of(static_dns_run, RECORD)
    addresses = [i["ipv6Addresses"][0] for i in (r.state for r in static_dns_run.of_type(INSTANCE))]
    aaaa = [r for r in records if r["type"] == "AAAA"]
    assert sorted(a["records"][0] for a in aaaa) == sorted(addresses)
    assert all(a["multivalueAnswerRoutingPolicy"] and a["name"] == DNS["dnsName"] for a in aaaa)
    assert len([r for r in records if r["type"] == "A"]) == 3


def test_without_dns_each_static_instance_is_named_by_both_its_addresses(static_run):
    v6 = static_run.outputs["public_ipv6s"]
    assert len(v6) == 3 and all(ipaddress.ip_address(a).version == 6 for a in v6)
    assert {f"stun:[{a}]:3478" for a in v6} <= set(static_run.outputs["stun_uris"])
    assert {f"turn:[{a}]:3478?transport=udp" for a in v6} <= set(static_run.outputs["turn_uris"])


def test_with_dns_the_uris_keep_the_host_name(static_dns_run):
    assert static_dns_run.outputs["stun_uris"] == ["stun:turn.example.com:3478"]


# -- the off switch ---------------------------------------------------------------------

def _names_ipv6(value: Any) -> bool:
    if isinstance(value, dict):
        return any("ipv6" in k.lower() or _names_ipv6(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_names_ipv6(v) for v in value)
    return isinstance(value, str) and (value == "::/0" or value == "dualstack")


@pytest.mark.parametrize("config", [{}, {"mode": "autoscale"}, {"turn": "false"}, DNS], ids=str)
def test_with_ipv6_off_no_resource_input_names_ipv6(config):
    run = program(ipv6="false", **config)
    assert [r.name for r in run.registrations if _names_ipv6(r.inputs)] == []
    assert "public_ipv6s" not in run.outputs


# -- bad input --------------------------------------------------------------------------

def test_ipv6_ssh_cidrs_with_ipv6_off_are_refused_naming_both_keys():
    with pytest.raises(ConfigError) as caught:
        program(ipv6="false", sshAllowedCidrs='["2001:db8::/48"]')
    (problem,) = caught.value.problems
    assert problem.startswith("stun-infra:sshAllowedCidrs: lists IPv6 CIDRs (2001:db8::/48)")
    assert "stun-infra:ipv6 is false" in problem


def test_ipv4_ssh_cidrs_with_ipv6_off_are_fine():
    run = program(ipv6="false", sshAllowedCidrs='["203.0.113.7/32"]')
    assert ("tcp", 22, 22, "203.0.113.7/32") in ingress(run)


# -- autoscale: the load balancer -----------------------------------------------------------

LB = "aws:lb/loadBalancer:LoadBalancer"
TG = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def test_the_load_balancer_is_dualstack_with_a_source_nat_prefix_for_udp(autoscale_run):
    lb = autoscale_run.one(LB).inputs
    assert (lb["ipAddressType"], lb["enablePrefixForIpv6SourceNat"]) == ("dualstack", "on")


def test_each_instance_group_has_an_ipv6_twin_with_ip_targets(autoscale_run):
    groups = [r.inputs for r in autoscale_run.of_type(TG)]
    v4 = {(g["protocol"], g["port"]) for g in groups if g["targetType"] == "instance"}
    v6 = {(g["protocol"], g["port"]) for g in groups if (g["targetType"], g.get("ipAddressType")) == ("ip", "ipv6")}
    assert v4 == v6 and len(v4) == 2
    assert all(g["preserveClientIp"] == "true" for g in groups)


def test_every_listener_defaults_to_an_ipv6_group_as_aws_requires_of_udp_on_dualstack(autoscale_run):
    groups = {r.state["arn"]: r.inputs for r in autoscale_run.of_type(TG)}
    for listener in inputs_of(autoscale_run, LISTENER):
        (action,) = listener["defaultActions"]
        assert groups[action["targetGroupArn"]].get("ipAddressType") == "ipv6", listener["protocol"]


def test_every_listener_sends_ipv4_clients_to_the_instance_twin_of_its_ipv6_group(autoscale_run):
    groups = {r.state["arn"]: r.inputs for r in autoscale_run.of_type(TG)}
    listeners = {r.state["arn"]: r.inputs for r in autoscale_run.of_type(LISTENER)}
    rules = [r.inputs for r in autoscale_run.of_type(RULE)]
    assert sorted(r["listenerArn"] for r in rules) == sorted(listeners)
    for rule in rules:
        assert rule["conditions"] == [{"sourceIp": {"ipAddressType": "ipv4"}}]
        (action,) = rule["actions"]
        default = groups[listeners[rule["listenerArn"]]["defaultActions"][0]["targetGroupArn"]]
        twin = groups[action["targetGroupArn"]]
        assert action["type"] == "forward" and twin["targetType"] == "instance" and "ipAddressType" not in twin
        assert (twin["protocol"], twin["port"]) == (default["protocol"], default["port"])


def test_with_ipv6_off_listeners_default_to_the_instance_groups_without_rules():
    run = program(mode="autoscale", ipv6=False)
    groups = {r.state["arn"]: r.inputs for r in run.of_type(TG)}
    assert run.of_type(RULE) == []
    assert all(groups[l["defaultActions"][0]["targetGroupArn"]]["targetType"] == "instance"
               for l in inputs_of(run, LISTENER))


def test_the_auto_scaling_group_registers_instances_in_the_ipv4_groups_only(autoscale_run):
    (group,) = inputs_of(autoscale_run, "aws:autoscaling/group:Group")
    instance_groups = {r.state["arn"] for r in autoscale_run.of_type(TG) if r.inputs["targetType"] == "instance"}
    assert set(group["targetGroupArns"]) == instance_groups


def test_each_instance_registers_its_own_ipv6_address_in_the_ipv6_groups(autoscale_run):
    from tests.support.debs import configure_of, files_of, stored_package
    script = "\n".join(files_of(stored_package(autoscale_run)[1]).values())
    ipv6_groups = [r for r in autoscale_run.of_type(TG) if r.inputs["targetType"] == "ip"]
    for group in ipv6_groups:
        assert f'--target-group-arn "{group.state["arn"]}"' in script
        assert f'--targets "Id=${{IPV6}},Port={int(group.inputs["port"])}"' in script
    assert "systemctl enable stun-nlb-targets.service" in configure_of(autoscale_run)


def test_the_autoscale_drain_leaves_the_ipv6_groups_with_the_registration_script(autoscale_run):
    from stun_infra.instance import drain, nlb_targets
    from tests.support.debs import files_of, stored_package
    script = files_of(stored_package(autoscale_run)[1])[drain.DRAIN_PATH]
    assert f'IPV6_TARGETS = "{nlb_targets.SCRIPT_PATH}"' in script


def test_the_role_may_register_in_the_ipv6_groups_and_nowhere_else(autoscale_run):
    import json
    statements = json.loads(autoscale_run.named(ROLE_POLICY, "stun-infra-test-policy").inputs["policy"])["Statement"]
    (register,) = [s for s in statements if "elasticloadbalancing:RegisterTargets" in s["Action"]]
    assert sorted(register["Action"]) == ["elasticloadbalancing:DeregisterTargets",
                                          "elasticloadbalancing:RegisterTargets"]
    assert sorted(register["Resource"]) == sorted(
        r.state["arn"] for r in autoscale_run.of_type(TG) if r.inputs["targetType"] == "ip")


def test_static_instances_register_nowhere(static_run):
    from tests.support.debs import files_of, stored_package
    assert all("stun-nlb-targets" not in text for text in files_of(stored_package(static_run)[1]).values())


def test_autoscale_dns_aliases_the_name_for_both_families():
    run = program(mode="autoscale", **DNS)
    aliases = [r for r in inputs_of(run, RECORD) if r.get("aliases")]
    lb = run.one(LB).state
    assert sorted(a["type"] for a in aliases) == ["A", "AAAA"]
    assert all(a["aliases"][0]["name"] == lb["dnsName"] and a["name"] == DNS["dnsName"] for a in aliases)


@pytest.mark.parametrize("cidr,allowed", [("2001:db8::/32", True), ("2001:db8::/31", False), ("::/0", False)])
def test_ipv6_ssh_cidrs_are_at_most_a_slash_32_and_never_all_of_ipv6(cidr, allowed):
    if allowed:
        assert ("tcp", 22, 22, cidr) in ingress(program(sshAllowedCidrs=f'["{cidr}"]'))
        return
    with pytest.raises(ConfigError) as caught:
        program(sshAllowedCidrs=f'["{cidr}"]')
    (problem,) = caught.value.problems
    assert problem.startswith(f'stun-infra:sshAllowedCidrs: got ["{cidr}"], \'{cidr}\' opens SSH to')
