"""Network: a VPC with one public subnet per availability zone, IPv4 or dual stack.

Dual stack: the VPC takes an Amazon-provided /56 (AWS picks it; it cannot be chosen
offline), each subnet the /64 of its index in it, and the route table sends ::/0 to the
internet gateway. All of these are in-place updates of an existing VPC, subnet and route
table (EC2 associates a CIDR block with a live VPC or subnet), so an IPv4 stack becomes
dual stack without replacing them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    zones: tuple[str, ...]
    tags: dict[str, str]
    ipv6: bool = False


IPV6_SUBNET_PREFIX = 64  # AWS subnets take exactly a /64 of the VPC's /56


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """Equal slices of the VPC, room left for as many as six zones."""
    net = ipaddress.IPv4Network(vpc_cidr)
    new_prefix = min(net.prefixlen + 3, 28)
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[:count]]


def subnet_ipv6_cidr(vpc_ipv6_cidr: str, index: int) -> str:
    """The `index`-th /64 of the VPC's IPv6 block (a /56 holds 256)."""
    net = ipaddress.IPv6Network(vpc_ipv6_cidr)
    step = 1 << (128 - IPV6_SUBNET_PREFIX)
    subnet = ipaddress.IPv6Network((int(net.network_address) + index * step, IPV6_SUBNET_PREFIX))
    if not subnet.subnet_of(net):
        raise ValueError(f"{vpc_ipv6_cidr} has no /64 number {index}")
    return str(subnet)


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    subnets: list[aws.ec2.Subnet]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:network:Network", name, None, opts)
        # With IPv6 off, not one input differs from the IPv4-only stack (no IPv6 argument at all).
        dual = {"assign_generated_ipv6_cidr_block": True} if args.ipv6 else {}
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags=tagged(args.tags, f"{name}-vpc"), opts=child_opts(self), **dual)
        # AWS gives every VPC a default group that admits its own members and lets all out;
        # nothing uses it here, so it is managed with no rule at all (AWS Security Hub EC2.2).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[],
            tags=tagged(args.tags, f"{name}-default-sg"), opts=child_opts(self))
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tagged(args.tags, f"{name}-igw"), opts=child_opts(self))
        routes = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)]
            + ([aws.ec2.RouteTableRouteArgs(ipv6_cidr_block="::/0", gateway_id=igw.id)] if args.ipv6 else []),
            tags=tagged(args.tags, f"{name}-public"), opts=child_opts(self))
        self.subnets = []
        self.subnet_ids: list[pulumi.Output[str]] = []
        for index, (zone, cidr) in enumerate(zip(args.zones, subnet_cidrs(args.cidr, len(args.zones)))):
            subnet_dual = {"ipv6_cidr_block": self.vpc.ipv6_cidr_block.apply(
                lambda block, i=index: subnet_ipv6_cidr(block, i)),
                "assign_ipv6_address_on_creation": True} if args.ipv6 else {}
            subnet = aws.ec2.Subnet(
                f"{name}-public-{zone}", vpc_id=self.vpc.id, cidr_block=cidr, availability_zone=zone,
                map_public_ip_on_launch=True, **subnet_dual,
                tags=tagged(args.tags, f"{name}-public-{zone}", Tier="public"), opts=child_opts(self))
            route = aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=subnet.id, route_table_id=routes.id, opts=child_opts(self))
            self.subnets.append(subnet)
            # Whatever takes a public address in the subnet (NLB, EIP, instance) must wait for
            # the gateway and the route, and go before them on destroy: the id carries both.
            self.subnet_ids.append(pulumi.Output.all(subnet.id, route.id, igw.id).apply(lambda ids: ids[0]))
        self.register_outputs({"vpc_id": self.vpc.id, "subnet_ids": self.subnet_ids})
