"""Firewall: the fleet's security group and the load balancer's, one described rule per opening.

Behind the Network Load Balancer (autoscale mode) the instances take the load-balanced
IPv4 ports only from the load balancer's security group: AWS states that a target rule
referencing it admits the load balancer's traffic even with client IP preservation on
(instance targets keep each IPv4 client's address), and that clients can then no longer
reach the targets directly
(https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-security-groups.html).
The IPv6 twins stay open to ::/0: IPv6 clients come through IP targets that keep the
client's own address, and the load balancer's IPv6 source addresses come from its
source NAT prefixes, which AWS does not document as covered by a group reference.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT

ANYWHERE = "0.0.0.0/0"
# What EC2 accepts in a security group's and a rule's description (IpRange.Description,
# GroupDescription): up to 255 of a-z, A-Z, 0-9, space and ._-:/()#,@[]+=&;{}!$*
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html
EC2_DESCRIPTION = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")
ANYWHERE_V6 = "::/0"


@dataclass(frozen=True)
class Opening:
    key: str
    protocol: str
    from_port: int
    to_port: int
    cidr: str | None  # None: from the load balancer's security group
    description: str


@dataclass(frozen=True)
class FirewallArgs:
    vpc_id: pulumi.Input[str]
    stun_port: int
    tls_ports: tuple[int, ...]  # TLS ports clients reach on the instances (none: the NLB ends TLS)
    relay_ports: tuple[int, int] | None  # None: STUN only, no relay range
    ssh_cidrs: tuple[str, ...]
    tags: dict[str, str]
    ipv6: bool = False  # dual stack: every opening to the internet also for ::/0
    behind_load_balancer: bool = False  # autoscale: the load-balanced IPv4 ports only from the NLB's group
    load_balancer_security_group_id: pulumi.Input[str] | None = None


def openings(args: FirewallArgs) -> list[Opening]:
    """Every ingress rule, derived from settings alone (so tests and plan read the same list)."""
    served = [
        Opening("stun-udp", "udp", args.stun_port, args.stun_port, ANYWHERE,
                "STUN/TURN over UDP from clients (also via the load balancer, client IPs preserved)"),
        Opening("stun-tcp", "tcp", args.stun_port, args.stun_port, ANYWHERE,
                "STUN/TURN over TCP from clients; load balancer health checks"),
    ]
    for i, port in enumerate(args.tls_ports):
        served.append(Opening("turns-tcp" if i == 0 else f"turns-tcp-{port}", "tcp", port, port, ANYWHERE,
                              "STUN/TURN over TLS from clients; load balancer health checks"))
    relay = []
    if args.relay_ports:
        low, high = args.relay_ports
        relay.append(Opening("relay-udp", "udp", low, high, ANYWHERE,
                             "TURN relayed media between peers and each instance public IP"))
    rules = ([Opening(f"{r.key}-from-nlb", r.protocol, r.from_port, r.to_port, None,
                      f"{r.protocol.upper()} {r.from_port} from the load balancer security group: clients and "
                      "health checks, client IPs preserved") for r in served]
             if args.behind_load_balancer else list(served)) + relay
    if args.ipv6:
        # Same keys with -v6: the IPv4 rules (and their URNs) stay exactly as they were.
        rules += [Opening(f"{r.key}-v6", r.protocol, r.from_port, r.to_port, ANYWHERE_V6, f"{r.description} (IPv6)")
                  for r in served + relay]
    for i, cidr in enumerate(args.ssh_cidrs):
        rules.append(Opening(f"ssh-{i}", "tcp", 22, 22, cidr, f"SSH from {cidr} (stun-infra:sshAllowedCidrs)"))
    return rules


def source(rule: Opening, group_id: pulumi.Input[str] | None) -> dict[str, pulumi.Input[str]]:
    """The rule's peer as the provider takes it: a CIDR of its family, or a referenced group."""
    if rule.cidr is None:
        if group_id is None:
            raise ValueError(f"{rule.key}: a rule from the load balancer needs its security group")
        return {"referenced_security_group_id": group_id}
    return {"cidr_ipv6" if ipaddress.ip_network(rule.cidr).version == 6 else "cidr_ipv4": rule.cidr}


def add_rule(kind: type, name: str, parent: pulumi.Resource, group: aws.ec2.SecurityGroup, rule: Opening,
             peer: dict[str, pulumi.Input[str]], tags: dict[str, str]) -> None:
    """One described ingress or egress rule (`kind`) of `group`, named `name`."""
    kind(name, security_group_id=group.id, ip_protocol=rule.protocol, from_port=rule.from_port,
         to_port=rule.to_port, description=rule.description, **peer, tags=tagged(tags, name),
         opts=child_opts(parent))


def new_group(name: str, parent: pulumi.Resource, vpc_id: pulumi.Input[str], description: str,
              tags: dict[str, str]) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=description, tags=tagged(tags, name),
                                 opts=child_opts(parent))


class Firewall(pulumi.ComponentResource):
    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: FirewallArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:network:Firewall", name, None, opts)
        self.security_group = new_group(f"{name}-sg", self, args.vpc_id, "coturn STUN/TURN fleet", args.tags)
        for rule in openings(args):
            add_rule(aws.vpc.SecurityGroupIngressRule, f"{name}-in-{rule.key}", self, self.security_group, rule,
                     source(rule, args.load_balancer_security_group_id), args.tags)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-out-all", security_group_id=self.security_group.id, ip_protocol="-1",
            cidr_ipv4=ANYWHERE,
            description="Relay to peers anywhere; packages, SSM and CloudWatch endpoints",
            tags=tagged(args.tags, f"{name}-out-all"), opts=child_opts(self))
        if args.ipv6:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-out-all-v6", security_group_id=self.security_group.id, ip_protocol="-1",
                cidr_ipv6=ANYWHERE_V6, description="Relay to IPv6 peers anywhere; IPv6 endpoints",
                tags=tagged(args.tags, f"{name}-out-all-v6"), opts=child_opts(self))
        self.register_outputs({"security_group_id": self.security_group.id})


# A TCP_UDP listener or target group takes both transports on one port.
TRANSPORTS = {"TCP_UDP": ("udp", "tcp"), "TCP": ("tcp",), "TLS": ("tcp",), "UDP": ("udp",)}


@dataclass(frozen=True)
class LoadBalancerFirewallArgs:
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    listeners: tuple[tuple[str, int], ...]  # (listener protocol, port) clients reach
    targets: tuple[tuple[str, int], ...]  # (target group protocol, port on the instances); health checks too
    tags: dict[str, str]
    ipv6: bool = False  # dualstack load balancer: IPv6 clients, IPv6 targets
    vpc_ipv6_cidr: pulumi.Input[str] | None = None


def _ports(pairs: tuple[tuple[str, int], ...]) -> list[tuple[str, int]]:
    return sorted({(t, port) for protocol, port in pairs for t in TRANSPORTS[protocol]}, key=lambda p: (p[1], p[0]))


# Path MTU discovery: the ICMP message a router sends back when a packet is too big for the
# path (ICMP type, code as a rule's from/to port). Without it in the load balancer's group, a
# client behind a smaller MTU never gets the larger TLS segments (a handshake that hangs); AWS
# recommends admitting it (load-balancer-security-groups.html, "Example: Filter client
# traffic"; https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/network_mtu.html#path_mtu_discovery).
PATH_MTU = {"": Opening("icmp-fragmentation-needed", "icmp", 3, 4, ANYWHERE,
                        "ICMP fragmentation needed from anywhere: path MTU discovery"),
            "-v6": Opening("icmpv6-packet-too-big", "icmpv6", 2, 0, ANYWHERE_V6,
                           "ICMPv6 packet too big from anywhere: path MTU discovery (IPv6)")}


def load_balancer_openings(args: LoadBalancerFirewallArgs) -> tuple[list[Opening], list[Opening]]:
    """(ingress, egress) of the load balancer's group: clients on exactly the listener ports, in
    each family it serves, and path MTU discovery's ICMP; out only to the VPC on the target
    ports, which are also the health checks' ports (traffic-port), and health checks obey
    outbound rules only
    (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-security-groups.html)."""
    families = [("", ANYWHERE, args.vpc_cidr)] + ([("-v6", ANYWHERE_V6, None)] if args.ipv6 else [])
    ingress = [Opening(f"{t}-{port}{suffix}", t, port, port, anywhere,
                       f"{t.upper()} {port} from clients to the listener{' (IPv6)' if suffix else ''}")
               for suffix, anywhere, _ in families for t, port in _ports(args.listeners)]
    ingress += [PATH_MTU[suffix] for suffix, _, _ in families]
    egress = [Opening(f"{t}-{port}{suffix}", t, port, port, vpc,
                      f"{t.upper()} {port} to the instances in the VPC: traffic and health checks"
                      f"{' (IPv6)' if suffix else ''}")
              for suffix, _, vpc in families for t, port in _ports(args.targets)]
    return ingress, egress


class LoadBalancerFirewall(pulumi.ComponentResource):
    """The Network Load Balancer's security group. An NLB gets its groups only when it is
    created (SetSecurityGroups refuses one created without), and AWS Global Accelerator keeps
    client addresses only for NLBs that have one."""

    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: LoadBalancerFirewallArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:network:LoadBalancerFirewall", name, None, opts)
        self.security_group = new_group(f"{name}-nlb-sg", self, args.vpc_id,
                                        "coturn STUN/TURN network load balancer", args.tags)
        ingress, egress = load_balancer_openings(args)
        for rule in ingress:
            add_rule(aws.vpc.SecurityGroupIngressRule, f"{name}-nlb-in-{rule.key}", self, self.security_group, rule,
                     source(rule, None), args.tags)
        for rule in egress:  # an IPv6 rule's block is the VPC's, known once AWS gives it
            peer = {"cidr_ipv4": rule.cidr} if rule.cidr else {"cidr_ipv6": args.vpc_ipv6_cidr}
            add_rule(aws.vpc.SecurityGroupEgressRule, f"{name}-nlb-out-{rule.key}", self, self.security_group, rule,
                     peer, args.tags)
        self.register_outputs({"security_group_id": self.security_group.id})
