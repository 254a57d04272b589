"""The NLB's own security group, the instances' rules that refer to it, and a safe replacement.

An NLB gets security groups only when it is created, so the load balancer is made with
one: clients in on exactly the listener ports, out only to the VPC on the target ports
(health checks obey outbound rules). Behind it, the instances admit the load-balanced
IPv4 ports from that group alone.
"""

from __future__ import annotations

import pytest

from stun_infra.cloud.components.firewall import (FirewallArgs, LoadBalancerFirewallArgs, load_balancer_openings,
                                                  openings)
from stun_infra.cloud.components.endpoint import layout
from tests.conftest import program

SG = "aws:ec2/securityGroup:SecurityGroup"
IN = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
OUT = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"


def owned_by(run, typ: str, component: str) -> list:
    return [r for r in run.of_type(typ) if r.parent.split("::")[2].endswith(f":network:{component}")]


def nlb_group(run):
    (group,) = owned_by(run, SG, "LoadBalancerFirewall")
    return group


def peer(rule: dict) -> str:
    return rule.get("cidrIpv4") or rule.get("cidrIpv6") or rule["referencedSecurityGroupId"]


def test_the_load_balancer_is_created_with_its_own_security_group(autoscale_run):
    (lb,) = autoscale_run.of_type(LB)
    assert lb.inputs["securityGroups"] == [nlb_group(autoscale_run).id]


def transport_rules(run, typ: str) -> list:
    """The group's TCP and UDP rules (its ICMP ones are path MTU discovery's)."""
    return [r for r in owned_by(run, typ, "LoadBalancerFirewall") if r.inputs["ipProtocol"] in ("tcp", "udp")]


def test_the_load_balancer_admits_clients_on_exactly_its_listener_ports_in_both_families(autoscale_run):
    rules = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"]), int(r.inputs["toPort"]), peer(r.inputs))
             for r in transport_rules(autoscale_run, IN)}
    listened = {(l["protocol"], int(l["port"])) for l in (r.inputs for r in autoscale_run.of_type(LISTENER))}
    assert listened == {("TCP_UDP", 3478), ("TCP", 5349)}
    assert rules == {(t, p, p, anywhere) for t, p in [("udp", 3478), ("tcp", 3478), ("tcp", 5349)]
                     for anywhere in ("0.0.0.0/0", "::/0")}


def test_with_acm_the_load_balancer_admits_its_tls_ports_and_sends_plain_tcp_to_the_stun_port():
    run = program(mode="autoscale", dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
    ingress = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"])) for r in transport_rules(run, IN)}
    egress = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"])) for r in owned_by(run, OUT, "LoadBalancerFirewall")}
    assert ingress == {("udp", 3478), ("tcp", 3478), ("tcp", 443), ("tcp", 5349)}
    assert egress == {("udp", 3478), ("tcp", 3478)}


def test_the_load_balancer_admits_path_mtu_discovery_messages_in_both_families_and_no_other_icmp(autoscale_run):
    """A router's "too big" answer reaches the load balancer (ICMP type, code as from/to port)."""
    rules = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"]), int(r.inputs["toPort"]), peer(r.inputs))
             for r in owned_by(autoscale_run, IN, "LoadBalancerFirewall") if r.inputs["ipProtocol"] not in ("tcp", "udp")}
    assert rules == {("icmp", 3, 4, "0.0.0.0/0"), ("icmpv6", 2, 0, "::/0")}


def test_without_ipv6_path_mtu_discovery_is_admitted_for_ipv4():
    run = program(mode="autoscale", ipv6="false")
    assert {(r.inputs["ipProtocol"], int(r.inputs["fromPort"]), int(r.inputs["toPort"]))
            for r in owned_by(run, IN, "LoadBalancerFirewall") if r.inputs["ipProtocol"].startswith("icmp")} == {
        ("icmp", 3, 4)}


def test_the_load_balancer_reaches_only_the_vpc_on_the_target_ports_which_health_checks_use(autoscale_run):
    vpc = autoscale_run.one("aws:ec2/vpc:Vpc")
    rules = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"]), int(r.inputs["toPort"]), peer(r.inputs))
             for r in owned_by(autoscale_run, OUT, "LoadBalancerFirewall")}
    assert rules == {(t, p, p, block) for t, p in [("udp", 3478), ("tcp", 3478), ("tcp", 5349)]
                     for block in (vpc.inputs["cidrBlock"], vpc.state["ipv6CidrBlock"])}
    checks = {r.inputs["healthCheck"]["port"] for r in autoscale_run.of_type("aws:lb/targetGroup:TargetGroup")}
    assert checks == {"traffic-port"}


def test_behind_the_load_balancer_the_instances_take_its_ipv4_ports_from_its_group_only(autoscale_run):
    group = nlb_group(autoscale_run).id
    ipv4 = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"]), peer(r.inputs))
            for r in owned_by(autoscale_run, IN, "Firewall") if not r.inputs.get("cidrIpv6")}
    assert ("udp", 3478, group) in ipv4 and ("tcp", 3478, group) in ipv4 and ("tcp", 5349, group) in ipv4
    assert not {rule for rule in ipv4 if rule[1] in (3478, 5349) and rule[2] == "0.0.0.0/0"}


def test_the_relay_range_stays_open_to_peers_everywhere(autoscale_run):
    relay = {peer(r.inputs) for r in owned_by(autoscale_run, IN, "Firewall") if int(r.inputs["fromPort"]) == 49152}
    assert relay == {"0.0.0.0/0", "::/0"}


def test_ipv6_clients_reach_the_instances_ip_targets_with_their_own_address(autoscale_run):
    ipv6 = {(r.inputs["ipProtocol"], int(r.inputs["fromPort"])) for r in owned_by(autoscale_run, IN, "Firewall")
            if r.inputs.get("cidrIpv6") == "::/0"}
    assert {("udp", 3478), ("tcp", 3478), ("tcp", 5349)} <= ipv6


def test_static_instances_keep_their_openings_to_clients(static_run):
    assert not static_run.of_type(LB) and len(static_run.of_type(SG)) == 1
    assert not [r for r in static_run.of_type(IN) if "referencedSecurityGroupId" in r.inputs]


def test_the_rules_from_the_load_balancer_are_new_resources_so_the_old_cidr_rules_are_not_changed_in_type():
    """EC2 cannot change a rule's type (a CIDR to a group) in place: new keys, new rules."""
    args = dict(vpc_id="", stun_port=3478, tls_ports=(5349,), relay_ports=(49152, 65535), ssh_cidrs=(), tags={},
                ipv6=True)
    before = {o.key: o for o in openings(FirewallArgs(**args))}
    after = {o.key: o for o in openings(FirewallArgs(**args, behind_load_balancer=True,
                                                     load_balancer_security_group_id="sg-1"))}
    assert all(after[k].cidr is None for k in after if k.endswith("-from-nlb"))
    assert {k for k in after if k in before} == {k for k in before if k.endswith("-v6") or k == "relay-udp"}


def test_a_rule_from_the_load_balancer_without_its_group_is_refused():
    from stun_infra.cloud.components.firewall import source
    (rule, *_) = openings(FirewallArgs(vpc_id="", stun_port=3478, tls_ports=(), relay_ports=None, ssh_cidrs=(),
                                       tags={}, behind_load_balancer=True))
    with pytest.raises(ValueError, match="security group"):
        source(rule, None)


def test_without_ipv6_the_load_balancer_group_has_no_ipv6_rule():
    run = program(mode="autoscale", ipv6="false")
    assert not [r for r in owned_by(run, IN, "LoadBalancerFirewall") + owned_by(run, OUT, "LoadBalancerFirewall")
                if "cidrIpv6" in r.inputs]


def test_each_transport_of_a_tcp_udp_listener_gets_one_rule_and_shared_ports_one_egress():
    groups, listeners = layout(3478, (443, 5349), 443, terminate_tls=True)
    ingress, egress = load_balancer_openings(LoadBalancerFirewallArgs(
        vpc_id="", vpc_cidr="10.0.0.0/16", tags={}, listeners=tuple((l.protocol, l.port) for l in listeners),
        targets=tuple((g.protocol, g.port) for g in groups)))
    assert [(o.protocol, o.from_port) for o in ingress] == [("tcp", 443), ("tcp", 3478), ("udp", 3478), ("tcp", 5349),
                                                            ("icmp", 3)]
    assert [(o.protocol, o.from_port) for o in egress] == [("tcp", 3478), ("udp", 3478)]


# -- replacing the load balancer safely ---------------------------------------------------

def test_a_change_of_address_type_or_security_groups_replaces_the_load_balancer(autoscale_run):
    """In place, AWS would make the NLB dualstack while its UDP listener still forwards to
    an IPv4 group, a state it refuses; a new NLB gets listeners built for its type."""
    (lb,) = autoscale_run.of_type(LB)
    assert {"ipAddressType", "enablePrefixForIpv6SourceNat", "securityGroups"} <= set(lb.replace_on_changes)


@pytest.mark.parametrize("ipv6, kind", [("true", "dualstack"), ("false", "ipv4")])
def test_the_address_type_is_always_said_so_that_a_switch_back_is_a_change(ipv6, kind):
    (lb,) = program(mode="autoscale", ipv6=ipv6).of_type(LB)
    assert lb.inputs["ipAddressType"] == kind


def test_listeners_and_their_rules_go_before_their_replacements_are_made(autoscale_run):
    """A target group serves one load balancer's listeners at a time: the old listener must
    be gone before the new NLB's listener forwards to the same group."""
    replaced = autoscale_run.of_type(LISTENER) + autoscale_run.of_type(RULE)
    assert len(replaced) == 4 and all(r.delete_before_replace for r in replaced)


def test_the_load_balancer_itself_is_made_before_the_old_one_goes(autoscale_run):
    (lb,) = autoscale_run.of_type(LB)
    assert not lb.delete_before_replace and "name" not in lb.inputs  # auto-named: old and new coexist
