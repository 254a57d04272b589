"""Network: a VPC with one public subnet per availability zone."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import PACKAGE, child_opts, tagged


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    zones: tuple[str, ...]
    tags: dict[str, str]


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """Equal slices of the VPC, room left for as many as six zones."""
    net = ipaddress.IPv4Network(vpc_cidr)
    new_prefix = min(net.prefixlen + 3, 28)
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[:count]]


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    subnets: list[aws.ec2.Subnet]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PACKAGE}:network:Network", name, None, opts)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags=tagged(args.tags, f"{name}-vpc"), opts=child_opts(self))
        # AWS gives every VPC a default group that admits its own members and lets all out;
        # nothing uses it here, so it is managed with no rule at all (AWS Security Hub EC2.2).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[],
            tags=tagged(args.tags, f"{name}-default-sg"), opts=child_opts(self))
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tagged(args.tags, f"{name}-igw"), opts=child_opts(self))
        routes = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=tagged(args.tags, f"{name}-public"), opts=child_opts(self))
        self.subnets = []
        self.subnet_ids: list[pulumi.Output[str]] = []
        for zone, cidr in zip(args.zones, subnet_cidrs(args.cidr, len(args.zones))):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{zone}", vpc_id=self.vpc.id, cidr_block=cidr, availability_zone=zone,
                map_public_ip_on_launch=True,
                tags=tagged(args.tags, f"{name}-public-{zone}", Tier="public"), opts=child_opts(self))
            route = aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=subnet.id, route_table_id=routes.id, opts=child_opts(self))
            self.subnets.append(subnet)
            # Whatever takes a public address in the subnet (NLB, EIP, instance) must wait for
            # the gateway and the route, and go before them on destroy: the id carries both.
            self.subnet_ids.append(pulumi.Output.all(subnet.id, route.id, igw.id).apply(lambda ids: ids[0]))
        self.register_outputs({"vpc_id": self.vpc.id, "subnet_ids": self.subnet_ids})
