"""Firewall: the fleet's security group, one described rule per opening."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import PACKAGE, child_opts, tagged

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
    cidr: str
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


def openings(args: FirewallArgs) -> list[Opening]:
    """Every ingress rule, derived from settings alone (so tests and plan read the same list)."""
    rules = [
        Opening("stun-udp", "udp", args.stun_port, args.stun_port, ANYWHERE,
                "STUN/TURN over UDP from clients (also via the load balancer, client IPs preserved)"),
        Opening("stun-tcp", "tcp", args.stun_port, args.stun_port, ANYWHERE,
                "STUN/TURN over TCP from clients; load balancer health checks"),
    ]
    for i, port in enumerate(args.tls_ports):
        rules.append(Opening("turns-tcp" if i == 0 else f"turns-tcp-{port}", "tcp", port, port, ANYWHERE,
                             "STUN/TURN over TLS from clients; load balancer health checks"))
    if args.relay_ports:
        low, high = args.relay_ports
        rules.append(Opening("relay-udp", "udp", low, high, ANYWHERE,
                             "TURN relayed media between peers and each instance public IP"))
    if args.ipv6:
        # Same keys with -v6: the IPv4 rules (and their URNs) stay exactly as they were.
        rules += [Opening(f"{r.key}-v6", r.protocol, r.from_port, r.to_port, ANYWHERE_V6, f"{r.description} (IPv6)")
                  for r in rules]
    for i, cidr in enumerate(args.ssh_cidrs):
        rules.append(Opening(f"ssh-{i}", "tcp", 22, 22, cidr, f"SSH from {cidr} (stun-infra:sshAllowedCidrs)"))
    return rules


class Firewall(pulumi.ComponentResource):
    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: FirewallArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PACKAGE}:network:Firewall", name, None, opts)
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id, description="coturn STUN/TURN fleet",
            tags=tagged(args.tags, f"{name}-sg"), opts=child_opts(self))
        for rule in openings(args):
            family = "cidr_ipv6" if ipaddress.ip_network(rule.cidr).version == 6 else "cidr_ipv4"
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-in-{rule.key}", security_group_id=self.security_group.id,
                ip_protocol=rule.protocol, from_port=rule.from_port, to_port=rule.to_port,
                description=rule.description, **{family: rule.cidr},
                tags=tagged(args.tags, f"{name}-in-{rule.key}"), opts=child_opts(self))
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
