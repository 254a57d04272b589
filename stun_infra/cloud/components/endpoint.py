"""Endpoint: one stable address for the fleet.

Autoscale mode puts a Network Load Balancer in front (STUN/TURN control on the
stun port over UDP and TCP); relayed media still flows to each instance's own public
IP, which an NLB cannot carry. TURN over TLS either passes through to coturn's TLS
port, or, with an ACM certificate, ends at the NLB (TLS listeners) and reaches coturn
as TURN over TCP on the stun port, from the client's own address (instance targets
preserve it). Optionally a Route 53 record names the endpoint: an alias to the NLB,
or one multivalue record per static instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.names import fitted
from stun_infra.common.project import PROJECT

DNS_TTL = 60
# A dualstack NLB answers clients on IPv4 and IPv6. Its UDP listeners need a source NAT
# prefix per subnet ([Network Load Balancers with UDP listeners] "The IP address type must
# be dualstack"; API_LoadBalancer EnablePrefixForIpv6SourceNat): AWS picks one (/80) from
# each subnet's /64 when it is on.
DUALSTACK = {"ip_address_type": "dualstack", "enable_prefix_for_ipv6_source_nat": "on"}
IPV4_ONLY = {"ip_address_type": "ipv4"}  # said, so that a switch back from dualstack is a change too
# A change of security groups replaces the load balancer: an NLB created without any can never
# get one (SetSecurityGroups refuses it), so a stack deployed before the NLB had its group gets
# a new one. A change of address type replaces it too instead of updating it. In place, AWS
# would take the NLB to dualstack while its UDP listener still forwards to an IPv4 group, a
# state it refuses ("You can't use an IPv4 target group with a UDP listener for a dualstack
# load balancer", create-target-group.html). A new NLB gets listeners built for its type.
REPLACE_ON = ["ipAddressType", "enablePrefixForIpv6SourceNat", "securityGroups"]
IPV4_RULE_PRIORITY = 10
AWS_LB_NAME_LIMIT = 32  # load balancers and target groups
# NLB health checks: the interval is 5-300 s and the timeout 2-120 s, no longer than the
# interval (AWS picks 10 s for TCP when none is given); a target is out after 3 misses.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-health-checks.html
HEALTH_CHECK_INTERVAL = 10
HEALTH_CHECK_TIMEOUT = 5
# TLS 1.3 and 1.2 only, forward-secret ciphers; the console's default family
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/describe-ssl-policies.html).
# The API's default, ELBSecurityPolicy-2016-08, still allows TLS 1.0.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclass(frozen=True)
class LoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    stun_port: int
    tls_ports: Sequence[int]            # the ports clients use for TURN over TLS
    coturn_port: int                # where passed-through TLS lands on the instances
    tags: dict[str, str]
    certificate_arn: pulumi.Input[str] | None = None  # ACM: the NLB terminates TLS
    ipv6: bool = False  # dual stack: IPv6 clients reach coturn with their own address
    # How long a deregistered (leaving) instance keeps its established flows: stun-infra:drainSeconds
    # (ELB allows 0-3600 s), so calls through it last while it drains (stun_infra/cloud/components/drain.py).
    deregistration_delay: int = 30
    # Given at creation: an NLB made without can never get one. No PrivateLink endpoint service
    # fronts it, so enforce_security_group_inbound_rules_on_private_link_traffic keeps AWS's
    # default (on: PrivateLink traffic would meet the inbound rules too).
    security_group_ids: Sequence[pulumi.Input[str]] = ()


@dataclass(frozen=True)
class TargetGroup:
    key: str
    protocol: str
    port: int  # on the instances


@dataclass(frozen=True)
class Listener:
    key: str
    protocol: str
    port: int
    target: str  # TargetGroup.key


def _tls_key(index: int, port: int) -> str:
    return "tls" if index == 0 else f"tls-{port}"  # the first keeps the name it always had


def layout(stun_port: int, tls_ports: Sequence[int], coturn_port: int, terminate_tls: bool
           ) -> tuple[list[TargetGroup], list[Listener]]:
    """Target groups and listeners, from ports alone (tests and plan read the same lists).

    TCP_UDP carries STUN/TURN over both transports on one port. Passed-through TLS goes to
    coturn's TLS port whatever the listener's port; terminated TLS goes to coturn's TCP port.
    """
    groups = [TargetGroup("stun", "TCP_UDP", stun_port)]
    listeners = [Listener("stun", "TCP_UDP", stun_port, "stun")]
    if terminate_tls:
        groups.append(TargetGroup("turn-tcp", "TCP", stun_port))
        listeners += [Listener(_tls_key(i, p), "TLS", p, "turn-tcp") for i, p in enumerate(tls_ports)]
    else:
        groups.append(TargetGroup("tls", "TCP", coturn_port))
        listeners += [Listener(_tls_key(i, p), "TCP", p, "tls") for i, p in enumerate(tls_ports)]
    return groups, listeners


class LoadBalancedEndpoint(pulumi.ComponentResource):
    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:endpoint:LoadBalancedEndpoint", name, None, opts)
        self.load_balancer = aws.lb.LoadBalancer(
            fitted(name, "nlb", AWS_LB_NAME_LIMIT), load_balancer_type="network", internal=False, subnets=list(args.subnet_ids),
            enable_cross_zone_load_balancing=True, security_groups=list(args.security_group_ids),
            tags=tagged(args.tags, f"{name}-nlb"),
            opts=child_opts(self, replace_on_changes=REPLACE_ON), **(DUALSTACK if args.ipv6 else IPV4_ONLY))
        group_specs, listener_specs = layout(args.stun_port, args.tls_ports, args.coturn_port,
                                             terminate_tls=args.certificate_arn is not None)
        groups: dict[str, aws.lb.TargetGroup] = {}
        ipv6_groups: dict[str, aws.lb.TargetGroup] = {}
        for spec, family in [(g, f) for g in group_specs for f in ((4, 6) if args.ipv6 else (4,))]:
            (groups if family == 4 else ipv6_groups)[spec.key] = self._target_group(name, args, spec, family)
        # A replaced load balancer replaces its listeners and rules, and these go first: a target
        # group serves listeners of one load balancer at a time ("verify that the target group is
        # not in use by a listener for any other load balancer", create-target-group.html), so the
        # new NLB's listener could not forward to it while the old one's still does.
        for spec in listener_specs:
            self._listener(name, args, spec, *((ipv6_groups, groups) if args.ipv6 else (groups, None)))
        self.target_groups = list(groups.values())
        self.target_group_arns = [g.arn for g in self.target_groups]  # the Auto Scaling group's (instance targets)
        # (ARN, port on the instance) of each IPv6 group: each instance registers itself in them.
        self.ipv6_target_groups = [(ipv6_groups[spec.key].arn, spec.port) for spec in group_specs if args.ipv6]
        self.dns_name = self.load_balancer.dns_name
        self.zone_id = self.load_balancer.zone_id
        self.register_outputs({"dns_name": self.dns_name, "target_group_arns": self.target_group_arns,
                               "ipv6_target_group_arns": [arn for arn, _ in self.ipv6_target_groups]})

    def _target_group(self, name: str, args: LoadBalancerArgs, spec: TargetGroup, family: int) -> aws.lb.TargetGroup:
        key = spec.key if family == 4 else f"{spec.key}-v6"
        return aws.lb.TargetGroup(
            fitted(name, key, AWS_LB_NAME_LIMIT), vpc_id=args.vpc_id, protocol=spec.protocol, port=spec.port,
            # Instance targets see an IPv4 client's own address, also behind a TLS listener,
            # but an IPv6 client's is translated to the load balancer's IPv4 one; only an
            # IPv6 group (IP targets: each instance registers its own address, see
            # stun_infra/instance/nlb_targets.py) keeps an IPv6 client's address
            # (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html).
            **({"target_type": "instance"} if family == 4 else {"target_type": "ip", "ip_address_type": "ipv6"}),
            preserve_client_ip="true",
            # A draining instance's flows end with the deregistration delay (drainSeconds:
            # its calls last while it drains), then clients move to a healthy one. Also the
            # only value that stays put: AWS defaults it to true for UDP/TCP_UDP groups and
            # the provider sends it on create only when true, so false would show a diff on
            # every `pulumi up`.
            connection_termination=True, deregistration_delay=args.deregistration_delay,
            # NLBs cannot check UDP: a TCP connect to the same port proves coturn listens.
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                protocol="TCP", port="traffic-port", interval=HEALTH_CHECK_INTERVAL,
                timeout=HEALTH_CHECK_TIMEOUT, healthy_threshold=3, unhealthy_threshold=3),
            tags=tagged(args.tags, f"{name}-{key}"), opts=child_opts(self))

    def _listener(self, name: str, args: LoadBalancerArgs, spec: Listener, default: dict[str, aws.lb.TargetGroup],
                  by_rule: dict[str, aws.lb.TargetGroup] | None) -> None:
        tls = {"certificate_arn": args.certificate_arn, "ssl_policy": TLS_POLICY} if spec.protocol == "TLS" else {}
        # Dual stack: the listener's default goes to the IPv6 group and a rule sends IPv4
        # clients to the instance group. AWS refuses an IPv4 group as the default of a UDP
        # (TCP_UDP) listener on a dualstack NLB ("A UDP listener for a dualstack load balancer
        # requires IPv6 target groups", load-balancer-listeners.html); NLB listener rules match
        # the source's address type on TCP, UDP, TCP_UDP and TLS listeners (add-rule.html), so
        # each family reaches targets of its own family with its own address. Every listener
        # takes the same shape.
        listener = aws.lb.Listener(
            f"{name}-{spec.key}", load_balancer_arn=self.load_balancer.arn, protocol=spec.protocol,
            port=spec.port, **tls,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward",
                                                              target_group_arn=default[spec.target].arn)],
            tags=tagged(args.tags, f"{name}-{spec.key}"), opts=child_opts(self, delete_before_replace=True))
        if by_rule is not None:
            aws.lb.ListenerRule(
                f"{name}-{spec.key}-v4", listener_arn=listener.arn, priority=IPV4_RULE_PRIORITY,
                conditions=[aws.lb.ListenerRuleConditionArgs(
                    source_ip=aws.lb.ListenerRuleConditionSourceIpArgs(ip_address_type="ipv4"))],
                actions=[aws.lb.ListenerRuleActionArgs(type="forward",
                                                       target_group_arn=by_rule[spec.target].arn)],
                tags=tagged(args.tags, f"{name}-{spec.key}-v4"), opts=child_opts(self, delete_before_replace=True))


@dataclass(frozen=True)
class DnsArgs:
    zone_id: str
    name: str
    alias_target: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None  # (dns name, zone id) of an NLB
    addresses: Sequence[pulumi.Input[str]] = ()  # static instances' Elastic IPs
    ipv6_addresses: Sequence[pulumi.Input[str]] = ()  # static instances' own IPv6 addresses (AAAA)
    alias_ipv6: bool = False  # the NLB is dualstack: an AAAA alias beside the A alias


@dataclass(frozen=True)
class RecordSet:
    """One record set already in the zone at the endpoint's name, as ListResourceRecordSets shows it."""

    type: str
    set_identifier: str = ""
    multivalue: bool = False
    alias_target: str = ""  # an alias record's target name

    @property
    def accelerator_alias(self) -> bool:
        """An alias of a Global Accelerator (their names are under awsglobalaccelerator.com)."""
        return self.alias_target.lower().rstrip(".").endswith(".awsglobalaccelerator.com")

    @property
    def policy(self) -> str:
        if self.multivalue:
            return "multivalue"
        return "simple" if not self.set_identifier else "weighted, latency, failover or geo"


ADDRESS_TYPES = ("A", "AAAA", "CNAME")


# What each entry makes at the name: a simple alias (autoscale; the accelerator), multivalue
# records (static), latency records (several regions).
ROUTING = {"simple": ("simple", "a simple alias"), "multivalue": ("multivalue", "multivalue A/AAAA records"),
           "latency": ("weighted, latency, failover or geo", "latency records, one per region"),
           "accelerator": ("simple", "a simple alias of the accelerator")}


def routing_conflict(wanted: str, zone_id: str, name: str, existing: Sequence[RecordSet]) -> str | None:
    """Why the records this stack makes (`wanted`, a key of ROUTING) cannot be created beside those
    already at `name`, with the way out.

    Route 53 keeps one routing policy per name and type (and a CNAME alone), and `pulumi up`
    creates the new records before it deletes the old ones, so a change of routing with dnsName
    set (a switch between static and autoscale, to or from several regions or the accelerator)
    fails half way unless the old records go first.
    https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy.html
    """
    policy, what = ROUTING[wanted]

    def clashes(r: RecordSet) -> str | None:
        if r.type not in ADDRESS_TYPES:
            return None
        if r.type == "CNAME" or r.policy != policy:
            return f"{r.policy} {r.type}"
        # A simple A alias is a load balancer's or the accelerator's: one cannot become the other in place.
        if policy == "simple" and r.type == "A" and r.accelerator_alias != (wanted == "accelerator"):
            return f"simple A (alias of {r.alias_target.rstrip('.') or 'a load balancer'})"
        return None

    clash = sorted({c for c in map(clashes, existing) if c})
    if not clash:
        return None
    return (f"stun-infra:dnsName: zone {zone_id} already holds {', '.join(clash)} records for {name}, and this "
            f"stack needs {what} there; Route 53 refuses both at once (a switch between static and autoscale, "
            "or to or from several regions or globalAccelerator, with dnsName set). Switch in two runs: "
            "1) `pulumi config rm stun-infra:dnsName && pulumi config rm stun-infra:dnsZoneId && pulumi up` "
            "removes this stack's records (the name stops resolving; records that are not this stack's, delete "
            "yourself), 2) set both keys again and `pulumi up` creates the new ones")


class DnsEndpoint(pulumi.ComponentResource):
    def __init__(self, name: str, args: DnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:endpoint:DnsEndpoint", name, None, opts)
        if args.alias_target:
            target, zone = args.alias_target
            for suffix, kind in (("", "A"), ("-v6", "AAAA"))[:2 if args.alias_ipv6 else 1]:
                aws.route53.Record(
                    f"{name}-alias{suffix}", zone_id=args.zone_id, name=args.name, type=kind,
                    aliases=[aws.route53.RecordAliasArgs(name=target, zone_id=zone, evaluate_target_health=True)],
                    opts=child_opts(self))
        for suffix, kind, addresses in (("", "A", args.addresses), ("-v6", "AAAA", args.ipv6_addresses)):
            for i, address in enumerate(addresses):
                # Multivalue answers: resolvers get every healthy instance, each its own relay address.
                aws.route53.Record(
                    f"{name}{suffix}-{i}", zone_id=args.zone_id, name=args.name, type=kind, ttl=DNS_TTL,
                    records=[address], set_identifier=f"{name}{suffix}-{i}", multivalue_answer_routing_policy=True,
                    opts=child_opts(self))
        self.fqdn = args.name
        self.register_outputs({"fqdn": self.fqdn})
