"""LoadBalancedEndpoint and DnsEndpoint, each built alone."""

from stun_infra.cloud.components.endpoint import (DnsArgs, DnsEndpoint, LoadBalancedEndpoint, LoadBalancerArgs,
                                                  layout)
from tests.cloud.components.conftest import TAGS, build_alone, children, component

ZONE = "Z0123456789ABCDEFGHIJ"


def test_the_load_balancer_alone_has_the_listeners_and_groups_its_layout_names():
    args = LoadBalancerArgs(vpc_id="vpc-1", subnet_ids=["subnet-1", "subnet-2"], stun_port=3478,
                            tls_ports=(443, 5349), coturn_port=443, tags=TAGS, certificate_arn=None,
                            ipv6=False, deregistration_delay=60, security_group_ids=["sg-1"])
    run = build_alone(lambda: LoadBalancedEndpoint("alone", args))
    component(run, "stun-infra:endpoint:LoadBalancedEndpoint")
    groups, listeners = layout(args.stun_port, args.tls_ports, args.coturn_port, terminate_tls=False)
    ports = sorted(listener.inputs["port"] for listener in children(run, "aws:lb/listener:Listener"))
    assert ports == sorted(listener.port for listener in listeners)
    assert len(children(run, "aws:lb/targetGroup:TargetGroup")) == len(groups)


def test_the_dns_endpoint_alone_names_the_addresses_given():
    run = build_alone(lambda: DnsEndpoint("alone", DnsArgs(zone_id=ZONE, name="turn.example.com",
                                                          addresses=["203.0.113.10"])))
    component(run, "stun-infra:endpoint:DnsEndpoint")
    record = run.one("aws:route53/record:Record")
    assert (record.inputs["type"], record.inputs["records"]) == ("A", ["203.0.113.10"])
