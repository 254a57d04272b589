"""The whole stack: the checks before any resource (`preflight`, each region's look-ups in
`regions`), then each region's components in dependency order, the home region first, then the
global entry. This module only wires: what each component builds is derived in the component,
what the checks look up comes from `preflight`, the URIs from the client side.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi

from stun_infra.cloud.args import firewall_args, load_balancer_firewall_args
from stun_infra.cloud.components.access import AccessArgs, InstanceAccess
from stun_infra.cloud.components.artifact import InstancePackage, PackageArgs
from stun_infra.cloud.components.certificate import AcmArgs, AcmCertificate
from stun_infra.cloud.components.drain import (DrainDocument, DrainDocumentArgs, LaunchHook, LaunchHookArgs,
                                                ScaleInDrain, ScaleInDrainArgs, group_delete_timeout,
                                                group_hooks)
from stun_infra.cloud.components.endpoint import DnsArgs, DnsEndpoint, LoadBalancedEndpoint, LoadBalancerArgs
from stun_infra.cloud.components.entry import (AcceleratorArgs, GlobalAccelerator, LatencyArgs, LatencyEntry,
                                               RegionTarget)
from stun_infra.cloud.components.firewall import Firewall, LoadBalancerFirewall
from stun_infra.cloud.components.fleet import (AutoscaleFleet, AutoscaleFleetArgs, CpuScaling, LaunchSpec,
                                               SessionsScaling, StaticFleet, StaticFleetArgs, WarmPool)
from stun_infra.cloud.components.keypair import KeyPairArgs, SshKeyPair
from stun_infra.cloud.components.logs import LogsArgs, ServerLogs
from stun_infra.cloud.components.monitoring import Monitoring, MonitoringArgs, RegionPanel
from stun_infra.cloud.components.network import Network, NetworkArgs
from stun_infra.cloud.components.reconciler import Ipv6TargetReconciler, ReconcilerArgs
from stun_infra.cloud.components.secrets import SecretsArgs, ServerSecrets
from stun_infra.cloud.components.warm_pool import WarmPoolTerminations, WarmPoolTerminationsArgs
from stun_infra.cloud.components.tls import TlsArgs, TlsCertificate
from stun_infra.cloud.preflight import Lookups, check_quotas
from stun_infra.cloud.regions import RegionSetup, regions_of
from stun_infra.client.targets import stack_uris
from stun_infra.instance import drain, metrics
from stun_infra.instance import package as instance_package
from stun_infra.instance.boot_inputs import BootInputs
from stun_infra.instance.nlb_targets import TargetGroupPort
from stun_infra.instance.userdata import render_user_data
from stun_infra.settings import Settings


SHARED_OUTPUTS = ("private_key_pem", "turn_shared_secret")


@dataclass
class Parts:
    """The components made so far, for the steps after."""

    network: Network
    firewall: Firewall
    load_balancer_firewall: LoadBalancerFirewall | None
    key_pair: SshKeyPair
    certificate: TlsCertificate | None
    acm: AcmCertificate | None
    secrets: ServerSecrets
    logs: ServerLogs
    endpoint: LoadBalancedEndpoint | None = None
    access: InstanceAccess | None = None
    artifact: InstancePackage | None = None
    built: pulumi.Output | None = None  # the instance package, once built
    spec: LaunchSpec | None = None
    opts: pulumi.ResourceOptions | None = None  # an added region's: under its group, its provider


@dataclass(frozen=True)
class Shared:
    """What the home region makes once and every added region uses."""

    turn_secret: pulumi.Input[str] | None
    key_pair: SshKeyPair
    validation_fqdns: pulumi.Input[list[str]] | None


@dataclass(frozen=True)
class FleetView:
    """What the monitoring and the outputs need of either fleet."""

    hosts: list[pulumi.Input[str]]
    asg_name: pulumi.Input[str] | None
    instance_ids: list[pulumi.Input[str]]
    min_size: int
    load_balancer: LoadBalancedEndpoint | None = None
    public_ips: list[pulumi.Input[str]] = ()
    ipv6_addresses: list[pulumi.Input[str]] = ()


def build_stack(settings: Settings) -> dict[str, Any]:
    """Create every resource; returns the stack outputs."""
    check_quotas(settings)
    views: dict[str, RegionView] = {}
    shared = None
    for region in regions_of(settings):
        views[region.settings.region] = build_region(region, shared)
        shared = shared or views[region.settings.region].shared
    monitor(settings, views)
    outputs = dict(views[settings.region].outputs)  # the home region's, as a one-region stack has them
    if settings.global_entry:
        outputs.update(global_entry(settings, views))
        # Per region, what differs by region: the SSH key and the TURN secret are the home region's.
        outputs.update(regions={region: {k: v for k, v in view.outputs.items() if k not in SHARED_OUTPUTS}
                                for region, view in views.items()})
    return outputs


@dataclass(frozen=True)
class RegionView:
    """One region once built: its settings, its fleet, its outputs and what it shares."""

    settings: Settings
    view: FleetView
    outputs: dict[str, Any]
    shared: Shared
    parts: Parts
    found: Lookups


def build_region(region: RegionSetup, shared: Shared | None) -> RegionView:
    """One region's complete fleet: network, firewall, access, secrets, logs, fleet, endpoint
    (its alarms come once every region is built: the home region's dashboard shows them all)."""
    settings, found = region.settings, region.found
    parts = foundation(settings, found, region.opts, shared)
    parts.endpoint = load_balancer(settings, parts)
    instance_side(settings, found, parts)
    outputs: dict[str, Any] = {"mode": settings.mode, "region": settings.region}
    view = autoscale_fleet(settings, parts, outputs) if parts.endpoint else static_fleet(settings, parts, outputs)
    return RegionView(settings=settings, view=view, outputs=outputs, parts=parts, found=found, shared=shared or Shared(
        turn_secret=parts.secrets.turn_secret, key_pair=parts.key_pair,
        validation_fqdns=parts.acm.validation_fqdns if parts.acm else None))


def monitor(settings: Settings, views: dict[str, RegionView]) -> None:
    """Each region's alarms (SNS in that region) and one dashboard, the home region's, with every
    region's widgets; then each region's outputs."""
    panels = [RegionPanel(region=r, asg_name=v.view.asg_name, instance_ids=v.view.instance_ids)
              for r, v in views.items()] if settings.multi_region else []
    home_url = None
    for region, v in views.items():
        s = v.settings
        monitoring = Monitoring(s.prefix, MonitoringArgs(
            region=region, metric_namespace=metrics.namespace(s.stack), asg_name=v.view.asg_name,
            instance_ids=v.view.instance_ids, min_size=v.view.min_size, cpu_high_percent=s.cpu_high_percent,
            alarm_email=s.alarm_email, session_logging=s.session_logging, turn=s.turn, total_quota=s.total_quota,
            tags=s.common_tags, panels=panels if not s.added_region else (), dashboard=not s.added_region,
            served_certificate=not s.tls.ends_at_load_balancer),
            opts=v.parts.opts)
        home_url = home_url or monitoring.dashboard_url
        stack_outputs(s, v.found, v.parts, v.view, home_url, v.outputs)


def foundation(settings: Settings, found: Lookups, opts: pulumi.ResourceOptions | None = None,
               shared: Shared | None = None) -> Parts:
    """The network, the firewalls, the key pair, the certificate, the secrets and the logs."""
    prefix, tags = settings.prefix, settings.common_tags
    network = Network(prefix, NetworkArgs(cidr=settings.vpc_cidr, zones=found.zones, tags=tags, ipv6=settings.ipv6),
                      opts=opts)
    # Autoscale: the load balancer's own group, which the instances' group refers to.
    nlb_firewall = LoadBalancerFirewall(prefix, load_balancer_firewall_args(
        settings, network.vpc.id, network.vpc.ipv6_cidr_block), opts=opts) if settings.autoscale else None
    firewall = Firewall(prefix, firewall_args(settings, network.vpc.id,
                                              nlb_firewall.security_group.id if nlb_firewall else None), opts=opts)
    key_pair = SshKeyPair(prefix, KeyPairArgs(tags=tags, shared_key=shared.key_pair if shared else None), opts=opts)
    # ACM's certificate (with a zone) keeps its key in ACM; else self-signed or the user's, via SSM.
    certificate = None if settings.tls.acm else TlsCertificate(prefix, TlsArgs(
        domain=settings.tls_domain, certificate_pem=settings.tls_certificate,
        private_key_pem=pulumi.Output.secret(settings.tls_private_key) if settings.tls.user else None), opts=opts)
    acm = AcmCertificate(prefix, AcmArgs(
        domain=settings.dns_name, zone_id=settings.dns_zone_id, exportable=settings.tls.acm_export, tags=tags,
        alternative_names=settings.regional_dns_names, validation_fqdns=shared.validation_fqdns if shared else None),
        opts=opts) if settings.tls.acm else None
    secrets = ServerSecrets(prefix, SecretsArgs(
        path=settings.ssm_path, turn=settings.turn,
        tls_certificate_pem=certificate.certificate_pem if certificate else None,
        tls_private_key_pem=certificate.private_key_pem if certificate else None, tags=tags,
        turn_secret=pulumi.Output.secret(settings.turn_secret) if settings.turn_secret else None,
        previous_turn_secret=pulumi.Output.secret(settings.turn_secret_previous)
        if settings.turn_secret_previous else None,
        shared_turn_secret=shared.turn_secret if shared else None), opts=opts)
    logs = ServerLogs(prefix, LogsArgs(
        log_group_name=metrics.log_group_name(settings.project, settings.stack),
        retention_days=settings.log_retention_days, metric_namespace=metrics.namespace(settings.stack),
        session_logging=settings.session_logging, tags=tags), opts=opts)
    return Parts(network=network, firewall=firewall, load_balancer_firewall=nlb_firewall, key_pair=key_pair,
                 certificate=certificate, acm=acm, secrets=secrets, logs=logs, opts=opts)


def exported_certificate_arn(settings: Settings, parts: Parts) -> pulumi.Input[str] | None:
    """Static with ACM: the certificate each instance exports for coturn."""
    return parts.acm.certificate_arn if parts.acm and settings.tls.acm_export else None


def load_balancer(settings: Settings, parts: Parts) -> LoadBalancedEndpoint | None:
    """Autoscale: the load balancer first, so that the role and the boot script can name its
    IPv6 target groups (each instance registers its own IPv6 address in them)."""
    nlb_firewall = parts.load_balancer_firewall
    if nlb_firewall is None:
        return None
    return LoadBalancedEndpoint(settings.prefix, LoadBalancerArgs(
        vpc_id=parts.network.vpc.id, subnet_ids=parts.network.subnet_ids, stun_port=settings.stun_port,
        tls_ports=settings.tls.ports, coturn_port=settings.tls.coturn_port, tags=settings.common_tags,
        certificate_arn=parts.acm.certificate_arn if parts.acm else None, ipv6=settings.ipv6,
        deregistration_delay=settings.drain_seconds, security_group_ids=[nlb_firewall.security_group.id]),
        opts=parts.opts)


def instance_side(settings: Settings, found: Lookups, parts: Parts) -> None:
    """The instance package, its stored copy, the role that reads it, and the launch spec."""
    prefix, tags = settings.prefix, settings.common_tags
    ipv6_groups = parts.endpoint.ipv6_target_groups if parts.endpoint else []
    exported_arn = exported_certificate_arn(settings, parts)
    # The instance package: what every instance of this stack runs (its digest changes with a
    # new version of a secret or certificate, so a launch template change rolls it out).
    parts.built = pulumi.Output.all(parts.secrets.pinned_names, exported_arn, *[arn for arn, _ in ipv6_groups]).apply(
        lambda a: instance_package.build(settings, BootInputs(
            parameters=a[0], certificate_arn=a[1] or "", ipv6_target_groups=tuple(
                TargetGroupPort(arn, port) for arn, (_, port) in zip(a[2:], ipv6_groups)))))
    parts.artifact = InstancePackage(prefix, PackageArgs(
        content_base64=parts.built.apply(lambda p: base64.b64encode(p.data).decode()),
        key=parts.built.apply(lambda p: p.key), tags=tags), opts=parts.opts)
    parts.access = InstanceAccess(prefix, AccessArgs(
        parameter_arns=parts.secrets.parameter_arns, log_group_arn=parts.logs.log_group.arn,
        metric_namespace=metrics.namespace(settings.stack), tags=tags, exported_certificate_arn=exported_arn,
        ipv6_target_group_arns=[arn for arn, _ in ipv6_groups], turn_secret_arn=parts.secrets.turn_secret_arn,
        package_object_arn=parts.artifact.object_arn), opts=parts.opts)
    parts.spec = LaunchSpec(
        ami_id=found.ami_id, root_device_name=found.root_device_name, instance_type=settings.instance_type,
        key_name=parts.key_pair.key_name, instance_profile_name=parts.access.profile.name,
        instance_profile_arn=parts.access.profile.arn, security_group_id=parts.firewall.security_group.id,
        root_volume_size=settings.root_volume_size, tags=tags, ipv6=settings.ipv6)


def fleet_options(parts: Parts) -> pulumi.ResourceOptions:
    """Instances boot only once the role may read what the script fetches."""
    return pulumi.ResourceOptions.merge(parts.opts, pulumi.ResourceOptions(
        depends_on=[parts.access, parts.artifact, parts.secrets, parts.logs, *([parts.acm] if parts.acm else [])]))


def warm_pool(settings: Settings) -> WarmPool | None:
    if not settings.warm_pool_on:
        return None
    return WarmPool(state=settings.warm_pool, min_size=settings.warm_pool_min_size,
                    max_prepared_capacity=settings.warm_pool_max_prepared_capacity,
                    reuse_on_scale_in=settings.warm_pool_reuse_on_scale_in)


def autoscale_fleet(settings: Settings, parts: Parts, outputs: dict[str, Any]) -> FleetView:
    """The group behind the load balancer, its scale-in drain and launch hook, its warm pool's
    terminations, the IPv6 reconciler, the DNS alias."""
    prefix, endpoint, artifact = settings.prefix, parts.endpoint, parts.artifact
    # The user data names the stored object (so the launch waits for its upload) by its digest.
    boot_script = pulumi.Output.all(artifact.bucket_name, parts.built, artifact.object_key).apply(
        lambda a: render_user_data(settings, a[0], a[1]))
    drain_hook, launch_hook = group_hooks(settings)
    fleet = AutoscaleFleet(prefix, AutoscaleFleetArgs(
        spec=parts.spec, subnet_ids=parts.network.subnet_ids, min_size=settings.min_size,
        desired_capacity=settings.desired_capacity, max_size=settings.max_size,
        user_data=boot_script, target_group_arns=endpoint.target_group_arns,
        health_check_grace_period=settings.health_check_grace_period,
        min_healthy_percentage=settings.min_healthy_percentage,
        scaling=SessionsScaling(metrics.namespace(settings.stack), settings.scaling_sessions_target)
        if settings.scaling_metric == "sessions" else CpuScaling(settings.scaling_cpu_target),
        delete_timeout=group_delete_timeout(settings.drain_seconds),
        warm_pool=warm_pool(settings), initial_hooks=(drain_hook, launch_hook)),
        opts=fleet_options(parts))
    ScaleInDrain(prefix, ScaleInDrainArgs(
        group_name=fleet.group_name, group_arn=fleet.group.arn, role_id=parts.access.role.id, hook=drain_hook),
        opts=parts.opts)
    LaunchHook(prefix, LaunchHookArgs(group_name=fleet.group_name, hook=launch_hook), opts=parts.opts)
    if settings.warm_pool_on:
        WarmPoolTerminations(prefix, WarmPoolTerminationsArgs(
            group_name=fleet.group_name, group_arn=fleet.group.arn,
            log_group_name=f"/{settings.project}/{settings.stack}/warm-pool-terminations",
            log_retention_days=settings.log_retention_days, tags=settings.common_tags), opts=parts.opts)
    if endpoint.ipv6_target_groups:
        Ipv6TargetReconciler(prefix, ReconcilerArgs(
            group_name=fleet.group_name, target_group_arns=[arn for arn, _ in endpoint.ipv6_target_groups],
            log_group_name=f"/{settings.project}/{settings.stack}/ipv6-targets",
            log_retention_days=settings.log_retention_days, tags=settings.common_tags), opts=parts.opts)
    if settings.dns_name:
        DnsEndpoint(prefix, DnsArgs(zone_id=settings.dns_zone_id, name=settings.region_dns_name,
                                    alias_target=(endpoint.dns_name, endpoint.zone_id), alias_ipv6=settings.ipv6),
                    opts=parts.opts)
    outputs.update(asg_name=fleet.group_name, load_balancer_dns_name=endpoint.dns_name)
    return FleetView(hosts=[endpoint.dns_name], asg_name=fleet.group_name, instance_ids=[],
                     min_size=settings.min_size, load_balancer=endpoint)


def static_fleet(settings: Settings, parts: Parts, outputs: dict[str, Any]) -> FleetView:
    """Instances with Elastic IPs, the drain document, the DNS records."""
    prefix, artifact = settings.prefix, parts.artifact
    fleet = StaticFleet(prefix, StaticFleetArgs(
        spec=parts.spec, subnet_ids=parts.network.subnet_ids, count=settings.instance_count,
        user_data_for=lambda eip: pulumi.Output.all(artifact.bucket_name, parts.built, eip, artifact.object_key).apply(
            lambda a: render_user_data(settings, a[0], a[1], expected_public_ip=a[2]))),
        opts=fleet_options(parts))
    document = DrainDocument(prefix, DrainDocumentArgs(
        document_name=drain.hook_name(settings), drain_seconds=settings.drain_seconds, tags=settings.common_tags),
        opts=parts.opts)
    outputs.update(drain_document_name=document.document.name)
    if settings.dns_name:
        DnsEndpoint(prefix, DnsArgs(zone_id=settings.dns_zone_id, name=settings.region_dns_name,
                                    addresses=fleet.public_ips, ipv6_addresses=fleet.ipv6_addresses), opts=parts.opts)
    outputs.update(instance_ids=fleet.instance_ids, public_ips=fleet.public_ips)
    if settings.ipv6:
        outputs.update(public_ipv6s=fleet.ipv6_addresses)
    # Without a DNS name each instance is named by both its addresses (IPv6 bracketed in URIs).
    return FleetView(hosts=[*fleet.public_ips, *fleet.ipv6_addresses], asg_name=None,
                     instance_ids=fleet.instance_ids, min_size=settings.instance_count,
                     public_ips=fleet.public_ips, ipv6_addresses=fleet.ipv6_addresses)


def global_entry(settings: Settings, views: dict[str, RegionView]) -> dict[str, Any]:
    """The accelerator or the latency records in front of every region; the URIs, global first."""
    targets = [RegionTarget(
        region=region, instance_ids=v.view.instance_ids, addresses=v.view.public_ips,
        ipv6_addresses=v.view.ipv6_addresses, load_balancer=(
            v.view.load_balancer.dns_name, v.view.load_balancer.zone_id, v.view.load_balancer.load_balancer.arn)
        if v.view.load_balancer else None) for region, v in views.items()]
    outputs: dict[str, Any] = {}
    hosts: list[pulumi.Input[str]] = [settings.dns_name] if settings.dns_name else []
    if settings.global_accelerator:
        accelerator = GlobalAccelerator(settings.prefix, AcceleratorArgs(
            stun_port=settings.stun_port, tls_ports=settings.tls.ports, regions=targets, tags=settings.common_tags,
            zone_id=settings.dns_zone_id, dns_name=settings.dns_name))
        hosts = hosts or [accelerator.dns_name]
        outputs.update(accelerator_dns_name=accelerator.dns_name, accelerator_addresses=accelerator.addresses)
    elif settings.dns_name:
        LatencyEntry(settings.prefix, LatencyArgs(
            zone_id=settings.dns_zone_id, name=settings.dns_name, stun_port=settings.stun_port, regions=targets,
            tags=settings.common_tags, alias_ipv6=settings.ipv6))
    regional = [h for v in views.values()
                for h in ([v.settings.region_dns_name] if settings.dns_name else v.view.hosts)]
    stun_uris, turn_uris = uris(settings, [*hosts, *regional])
    global_stun, global_turn = uris(settings, hosts)
    outputs.update(stun_uris=stun_uris, global_stun_uris=global_stun)
    if settings.turn:
        outputs.update(turn_uris=turn_uris, global_turn_uris=global_turn)
    return outputs


def uris(settings: Settings, hosts: list[pulumi.Input[str]]) -> tuple[pulumi.Output, pulumi.Output]:
    """(stun_uris, turn_uris) for the given hosts, once their values are known."""
    every = pulumi.Output.all(*hosts).apply(
        lambda hs: stack_uris(hs, stun_port=settings.stun_port, turn=settings.turn, tls=settings.tls))
    return every.apply(lambda u: u[0]), every.apply(lambda u: u[1])


def stack_outputs(settings: Settings, found: Lookups, parts: Parts, view: FleetView,
                  dashboard_url: pulumi.Input[str], outputs: dict[str, Any]) -> dict[str, Any]:
    stun_uris, turn_uris = uris(settings, [settings.region_dns_name] if settings.dns_name else view.hosts)
    outputs.update(
        stun_uris=stun_uris,
        key_pair_name=parts.key_pair.key_name,
        private_key_pem=parts.key_pair.private_key_pem,
        dashboard_url=dashboard_url,
        ami_name=found.ami_name,
        boot_script_sha256=parts.built.apply(lambda p: p.sha256),
        instance_package_bucket=parts.artifact.bucket_name,
    )
    if parts.certificate:
        outputs.update(tls_certificate_pem=parts.certificate.certificate_pem)
    if parts.acm:
        outputs.update(tls_certificate_arn=parts.acm.certificate_arn)
    if settings.turn:
        outputs.update(turn_uris=turn_uris, turn_shared_secret=parts.secrets.turn_secret,
                       turn_secret_parameter=parts.secrets.turn_secret_parameter,
                       turn_secret_app_policy=parts.secrets.app_policy)
    return outputs
