"""Firewall and LoadBalancerFirewall, each built alone: one rule per opening."""

from stun_infra.cloud.components.firewall import (Firewall, FirewallArgs, LoadBalancerFirewall,
                                                  LoadBalancerFirewallArgs, openings)
from tests.cloud.components.conftest import TAGS, build_alone, children, component

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def test_the_instances_firewall_alone_has_one_ingress_rule_per_opening():
    args = FirewallArgs(vpc_id="vpc-1", stun_port=3478, tls_ports=(5349,), relay_ports=(49152, 65535),
                        ssh_cidrs=("203.0.113.10/32",), tags=TAGS)
    run = build_alone(lambda: Firewall("alone", args))
    component(run, "stun-infra:network:Firewall")
    assert len(children(run, INGRESS)) == len(openings(args))


def test_the_load_balancers_firewall_alone_lets_clients_reach_each_listener():
    args = LoadBalancerFirewallArgs(vpc_id="vpc-1", vpc_cidr="10.42.0.0/16", listeners=(("TCP_UDP", 3478),),
                                    targets=(("TCP_UDP", 3478),), tags=TAGS)
    run = build_alone(lambda: LoadBalancerFirewall("alone", args))
    component(run, "stun-infra:network:LoadBalancerFirewall")
    assert {r.inputs["fromPort"] for r in children(run, INGRESS) if r.inputs["ipProtocol"] in ("tcp", "udp")} == {3478}
