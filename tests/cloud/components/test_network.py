"""Network, built alone: a subnet per zone, each routed through the one route table."""

from stun_infra.cloud.components.network import Network, NetworkArgs
from tests.cloud.components.conftest import TAGS, build_alone, children, component

ZONES = ("eu-west-3a", "eu-west-3b")


def test_the_network_alone_holds_a_subnet_per_zone_and_routes_each():
    run = build_alone(lambda: Network("alone", NetworkArgs(cidr="10.42.0.0/16", zones=ZONES, tags=TAGS, ipv6=True)))
    component(run, "stun-infra:network:Network")
    assert sorted(s.inputs["availabilityZone"] for s in children(run, "aws:ec2/subnet:Subnet")) == list(ZONES)
    assert len(children(run, "aws:ec2/routeTableAssociation:RouteTableAssociation")) == len(ZONES)
