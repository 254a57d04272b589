"""Global entry: one name or address in front of every region's fleet.

- DNS (`LatencyEntry`): `dnsName` answers with the region nearest the resolver (Route 53
  latency records, one set per region), each tied to a Route 53 health check of that region
  (TCP on the STUN port: Route 53 has no UDP check), so a region that stops answering leaves
  the answers. Autoscale: a check of the load balancer's name; static: a check per instance
  and a calculated check, healthy while one instance is.
- Anycast (`GlobalAccelerator`): two static anycast addresses, a UDP and a TCP listener, one
  endpoint group per region and listener, client IP preservation on (STUN must see the
  client's own address). Its API lives in us-west-2 whatever the regions; TURN relay traffic
  never passes through it (relayed addresses stay each instance's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.cloud.components.endpoint import DNS_TTL
from stun_infra.common.project import PROJECT

# Route 53 health checks: every 30 s (the standard interval; 10 s costs more), out after 3
# failures. https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-creating-values.html
CHECK_INTERVAL = 30
CHECK_FAILURES = 3
# Global Accelerator's API endpoint and the hosted zone of every accelerator's DNS name.
# https://docs.aws.amazon.com/general/latest/gr/global_accelerator.html
GA_API_REGION = "us-west-2"
GA_HOSTED_ZONE = "Z2BJ6XQ5FK7U4H"
GA_WEIGHT = 128  # the default: every endpoint of a group alike
GA_CHECK_INTERVAL = 10  # 10 or 30 s
GA_CHECK_THRESHOLD = 3
# A Route 53 health check holds at most 10 tags (ChangeTagsForResource AddTags: "You can add a
# maximum of 10 tags to a health check"): the stack's own, never the user's up to 45.
CHECK_TAG_KEYS = ("Project", "Stack", "ManagedBy")


def check_tags(tags: dict[str, str], name: str) -> dict[str, str]:
    return tagged({k: v for k, v in tags.items() if k in CHECK_TAG_KEYS}, name)


@dataclass(frozen=True)
class RegionTarget:
    """One region's endpoint, as the global entry reaches it."""

    region: str
    load_balancer: tuple[pulumi.Input[str], pulumi.Input[str], pulumi.Input[str]] | None = None  # dns, zone, arn
    instance_ids: Sequence[pulumi.Input[str]] = ()
    addresses: Sequence[pulumi.Input[str]] = ()  # static: Elastic IPs
    ipv6_addresses: Sequence[pulumi.Input[str]] = ()


@dataclass(frozen=True)
class LatencyArgs:
    zone_id: str
    name: str
    stun_port: int
    regions: Sequence[RegionTarget]
    tags: dict[str, str]
    alias_ipv6: bool = False  # the load balancers are dualstack


class LatencyEntry(pulumi.ComponentResource):
    def __init__(self, name: str, args: LatencyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:endpoint:LatencyEntry", name, None, opts)
        self.health_check_ids: dict[str, pulumi.Output[str]] = {}
        for target in args.regions:
            node = f"{name}-{target.region}"
            check = self._region_check(node, target, args)
            self.health_check_ids[target.region] = check.id
            latency = [aws.route53.RecordLatencyRoutingPolicyArgs(region=target.region)]
            if target.load_balancer:
                dns, zone, _ = target.load_balancer
                for suffix, kind in (("", "A"), ("-v6", "AAAA"))[:2 if args.alias_ipv6 else 1]:
                    aws.route53.Record(
                        f"{node}-latency{suffix}", zone_id=args.zone_id, name=args.name, type=kind,
                        set_identifier=target.region, latency_routing_policies=latency, health_check_id=check.id,
                        aliases=[aws.route53.RecordAliasArgs(name=dns, zone_id=zone, evaluate_target_health=True)],
                        opts=child_opts(self))
                continue
            for suffix, kind, addresses in (("", "A", target.addresses), ("-v6", "AAAA", target.ipv6_addresses)):
                if addresses:
                    aws.route53.Record(
                        f"{node}-latency{suffix}", zone_id=args.zone_id, name=args.name, type=kind, ttl=DNS_TTL,
                        records=list(addresses), set_identifier=target.region, latency_routing_policies=latency,
                        health_check_id=check.id, opts=child_opts(self))
        self.register_outputs({"health_check_ids": self.health_check_ids})

    def _region_check(self, node: str, target: RegionTarget, args: LatencyArgs) -> aws.route53.HealthCheck:
        """TCP on the STUN port of the load balancer, or (static) healthy while one instance answers."""
        if target.load_balancer:
            return aws.route53.HealthCheck(
                f"{node}-check", type="TCP", fqdn=target.load_balancer[0], port=args.stun_port,
                request_interval=CHECK_INTERVAL, failure_threshold=CHECK_FAILURES,
                tags=check_tags(args.tags, f"{node}-check"), opts=child_opts(self))
        instances = [aws.route53.HealthCheck(
            f"{node}-check-{i}", type="TCP", ip_address=address, port=args.stun_port,
            request_interval=CHECK_INTERVAL, failure_threshold=CHECK_FAILURES,
            tags=check_tags(args.tags, f"{node}-check-{i}"), opts=child_opts(self))
            for i, address in enumerate(target.addresses)]
        return aws.route53.HealthCheck(
            f"{node}-check", type="CALCULATED", child_healthchecks=[c.id for c in instances],
            child_health_threshold=1, tags=check_tags(args.tags, f"{node}-check"), opts=child_opts(self))


@dataclass(frozen=True)
class AcceleratorArgs:
    stun_port: int
    tls_ports: Sequence[int]  # the TLS ports clients use (TCP)
    regions: Sequence[RegionTarget]
    tags: dict[str, str]
    zone_id: str = ""  # with a zone: dnsName is an alias of the accelerator
    dns_name: str = ""


class GlobalAccelerator(pulumi.ComponentResource):
    def __init__(self, name: str, args: AcceleratorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:endpoint:GlobalAccelerator", name, None, opts)
        self.provider = aws.Provider(f"{name}-global-accelerator", region=GA_API_REGION, opts=child_opts(self))
        on_api = child_opts(self, provider=self.provider)
        accelerator = aws.globalaccelerator.Accelerator(
            f"{name}-accelerator", name=name, ip_address_type="IPV4", enabled=True,
            tags=tagged(args.tags, f"{name}-accelerator"), opts=on_api)
        ports = {"udp": [args.stun_port], "tcp": [args.stun_port, *args.tls_ports]}
        for protocol, numbers in ports.items():
            listener = aws.globalaccelerator.Listener(
                f"{name}-{protocol}", accelerator_arn=accelerator.id, protocol=protocol.upper(),
                port_ranges=[aws.globalaccelerator.ListenerPortRangeArgs(from_port=p, to_port=p) for p in numbers],
                opts=on_api)
            for target in args.regions:
                endpoints = [target.load_balancer[2]] if target.load_balancer else list(target.instance_ids)
                aws.globalaccelerator.EndpointGroup(
                    f"{name}-{protocol}-{target.region}", listener_arn=listener.id,
                    endpoint_group_region=target.region,
                    endpoint_configurations=[aws.globalaccelerator.EndpointGroupEndpointConfigurationArgs(
                        endpoint_id=endpoint, weight=GA_WEIGHT, client_ip_preservation_enabled=True)
                        for endpoint in endpoints],
                    # Instances are checked on the STUN port over TCP; a load balancer's own
                    # health is what Global Accelerator uses for it.
                    health_check_protocol="TCP", health_check_port=args.stun_port,
                    health_check_interval_seconds=GA_CHECK_INTERVAL, threshold_count=GA_CHECK_THRESHOLD,
                    opts=on_api)
        self.dns_name = accelerator.dns_name
        self.addresses = accelerator.ip_sets.apply(lambda sets: [a for s in sets for a in s.ip_addresses or []])
        if args.zone_id:
            aws.route53.Record(
                f"{name}-accelerator-alias", zone_id=args.zone_id, name=args.dns_name, type="A",
                aliases=[aws.route53.RecordAliasArgs(name=accelerator.dns_name, zone_id=accelerator.hosted_zone_id,
                                                     evaluate_target_health=True)],
                opts=child_opts(self))
        self.register_outputs({"dns_name": self.dns_name, "addresses": self.addresses})
