"""Component args derived from the settings where both the checks before any resource
(preflight) and the wiring (stack) need them: one derivation, two readers."""

from __future__ import annotations

import pulumi

from stun_infra.cloud.components.endpoint import layout
from stun_infra.cloud.components.firewall import FirewallArgs, LoadBalancerFirewallArgs
from stun_infra.settings import Settings


def firewall_args(settings: Settings, vpc_id: pulumi.Input[str] = "",
                  load_balancer_security_group_id: pulumi.Input[str] | None = None) -> FirewallArgs:
    return FirewallArgs(
        vpc_id=vpc_id, stun_port=settings.stun_port, tls_ports=settings.tls.instance_ports,
        relay_ports=(settings.relay_min_port, settings.relay_max_port) if settings.turn else None,
        ssh_cidrs=settings.ssh_allowed_cidrs, tags=settings.common_tags, ipv6=settings.ipv6,
        behind_load_balancer=settings.autoscale, load_balancer_security_group_id=load_balancer_security_group_id)


def load_balancer_firewall_args(settings: Settings, vpc_id: pulumi.Input[str],
                                vpc_ipv6_cidr: pulumi.Input[str] | None) -> LoadBalancerFirewallArgs:
    groups, listeners = layout(settings.stun_port, settings.tls.ports, settings.tls.coturn_port, settings.tls.acm)
    return LoadBalancerFirewallArgs(
        vpc_id=vpc_id, vpc_cidr=settings.vpc_cidr, tags=settings.common_tags, ipv6=settings.ipv6,
        listeners=tuple((l.protocol, l.port) for l in listeners), targets=tuple((g.protocol, g.port) for g in groups),
        vpc_ipv6_cidr=vpc_ipv6_cidr if settings.ipv6 else None)
