"""The whole stack: look everything up, then build the components in dependency order.

Every lookup and every check runs before the first resource is registered, so a bad
region or zone count fails with nothing half-deployed.
"""

from __future__ import annotations

import base64
import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from stun_infra.instance import drain, launch, metrics
from stun_infra.cloud.components.access import AccessArgs, InstanceAccess
from stun_infra.cloud.components.artifact import InstancePackage, PackageArgs
from stun_infra.cloud.components.certificate import AcmArgs, AcmCertificate
from stun_infra.cloud.components.drain import (DrainDocument, DrainDocumentArgs, LaunchHook, LaunchHookArgs,
                                                ScaleInDrain, ScaleInDrainArgs, group_delete_timeout)
from stun_infra.cloud.components.endpoint import (DnsArgs, DnsEndpoint, LoadBalancedEndpoint, LoadBalancerArgs, layout,
                                                  RecordSet, routing_conflict)
from stun_infra.cloud.components.firewall import (Firewall, FirewallArgs, LoadBalancerFirewall,
                                                  LoadBalancerFirewallArgs, openings)
from stun_infra.cloud.components.fleet import (AutoscaleFleet, AutoscaleFleetArgs, CpuScaling, LaunchSpec,
                                               SessionsScaling, StaticFleet, StaticFleetArgs)
from stun_infra.cloud.components.keypair import KeyPairArgs, SshKeyPair
from stun_infra.cloud.components.logs import LogsArgs, ServerLogs
from stun_infra.cloud.components.monitoring import Monitoring, MonitoringArgs
from stun_infra.cloud.components.network import Network, NetworkArgs
from stun_infra.cloud.components.reconciler import Ipv6TargetReconciler, ReconcilerArgs
from stun_infra.cloud.components.secrets import SecretsArgs, ServerSecrets
from stun_infra.cloud.components.tls import TlsArgs, TlsCertificate
from stun_infra.client.targets import server_uris
from stun_infra.common.project import PROJECT
from stun_infra.settings import DEBIAN_ARCH, ConfigError, Settings
from stun_infra.instance.nlb_targets import TargetGroupPort
from stun_infra.instance import package as instance_package
from stun_infra.instance.boot_inputs import BootInputs
from stun_infra.instance.userdata import render_user_data

DEBIAN_OWNER = "136693071363"  # Debian's official AWS account


@dataclass(frozen=True)
class Lookups:
    zones: tuple[str, ...]
    ami_id: str
    ami_name: str
    root_device_name: str


# "Inbound or outbound rules per security group: 60", counted separately for IPv4 and
# IPv6 rules (adjustable, but a new account has 60).
# https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups
MAX_RULES_PER_GROUP = 60


def firewall_args(settings: Settings, vpc_id: pulumi.Input[str] = "",
                  load_balancer_security_group_id: pulumi.Input[str] | None = None) -> FirewallArgs:
    return FirewallArgs(
        vpc_id=vpc_id, stun_port=settings.stun_port, tls_ports=settings.tls.instance_ports,
        relay_ports=(settings.relay_min_port, settings.relay_max_port) if settings.turn else None,
        ssh_cidrs=settings.ssh_allowed_cidrs, tags=settings.common_tags, ipv6=settings.ipv6,
        behind_load_balancer=settings.autoscale, load_balancer_security_group_id=load_balancer_security_group_id)


def load_balancer_firewall_args(settings: Settings, network: Network) -> LoadBalancerFirewallArgs:
    groups, listeners = layout(settings.stun_port, settings.tls.ports, settings.tls.coturn_port, settings.tls.acm)
    return LoadBalancerFirewallArgs(
        vpc_id=network.vpc.id, vpc_cidr=settings.vpc_cidr, tags=settings.common_tags, ipv6=settings.ipv6,
        listeners=tuple((l.protocol, l.port) for l in listeners), targets=tuple((g.protocol, g.port) for g in groups),
        vpc_ipv6_cidr=network.vpc.ipv6_cidr_block if settings.ipv6 else None)


def check_quotas(settings: Settings) -> None:
    """AWS limits the config can push past, checked before any look-up or resource."""
    def families(cidr: str | None) -> tuple[int, ...]:
        return (4, 6) if cidr is None else (ipaddress.ip_network(cidr).version,)  # a group reference: either

    rules = Counter(v for o in openings(firewall_args(settings)) for v in families(o.cidr))
    ssh = Counter(v for c in settings.ssh_allowed_cidrs for v in families(c))
    problems = [
        f"{PROJECT}:sshAllowedCidrs: {ssh[v]} IPv{v} CIDRs make {count} inbound IPv{v} rules in the security "
        f"group, AWS allows {MAX_RULES_PER_GROUP} per IP version; list at most "
        f"{MAX_RULES_PER_GROUP - (count - ssh[v])} IPv{v} CIDRs (e.g. one covering range instead of many /32s)"
        for v, count in sorted(rules.items()) if count > MAX_RULES_PER_GROUP]
    if problems:
        raise ConfigError(problems)


def look_up(settings: Settings) -> Lookups:
    # No `state` filter: a zone's state (available, impaired, constrained...) changes with
    # events, and a choice that followed it would move a subnet, and everything in it, on
    # the next `pulumi up`. The region's standard zones and their offerings are stable.
    available = aws.get_availability_zones(
        filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])])
    if len(available.names) < settings.availability_zones:
        raise ConfigError([
            f"{PROJECT}:availabilityZones: got {settings.availability_zones}, but region {settings.region} "
            f"has {len(available.names)} zones ({', '.join(available.names)}); "
            f"choose at most {len(available.names)} (and at least 2)"])
    # Newer and Graviton types are not offered in every zone: launching there would fail.
    offered = set(aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type",
                                                            values=[settings.instance_type])]).locations)
    usable = [zone for zone in sorted(available.names) if zone in offered]
    if len(usable) < settings.availability_zones:
        raise ConfigError([
            f"{PROJECT}:instanceType: got {settings.instance_type}, which region {settings.region} offers in "
            f"{len(usable)} zones ({', '.join(usable) or 'none'}) but {PROJECT}:availabilityZones "
            f"asks for {settings.availability_zones}; choose an instance type offered in enough zones"
            + (f" or at most {len(usable)} zones" if len(usable) >= 2 else "")])
    ami = aws.ec2.get_ami(
        owners=[DEBIAN_OWNER], most_recent=True,
        filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[f"debian-12-{DEBIAN_ARCH[settings.architecture]}-*"]),
                 aws.ec2.GetAmiFilterArgs(name="architecture", values=[settings.architecture]),
                 aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
                 aws.ec2.GetAmiFilterArgs(name="root-device-type", values=["ebs"])])
    if settings.dns_zone_id:
        check_zone(settings)
        check_records(settings)
    return Lookups(zones=tuple(usable[:settings.availability_zones]), ami_id=ami.id,
                   ami_name=ami.name, root_device_name=ami.root_device_name)


def check_zone(settings: Settings) -> None:
    """dnsName must lie in the zone, and the zone be public: ACM validates through it and
    clients resolve the name through it."""
    try:
        zone = aws.route53.get_zone(zone_id=settings.dns_zone_id)
    except Exception as e:  # the provider's error names the zone; keep it to one line
        raise ConfigError([f"{PROJECT}:dnsZoneId: got {settings.dns_zone_id}, no such Route 53 hosted zone "
                           f"visible to these credentials ({str(e).splitlines()[0] if str(e) else type(e).__name__})"]
                          ) from None
    domain = zone.name.rstrip(".").lower()
    name = settings.dns_name.rstrip(".").lower()
    if name != domain and not name.endswith("." + domain):
        raise ConfigError([f"{PROJECT}:dnsName: got {settings.dns_name}, which is outside zone "
                           f"{settings.dns_zone_id} ({domain}); use a name ending in .{domain}"])
    if zone.private_zone:
        raise ConfigError([f"{PROJECT}:dnsZoneId: got {settings.dns_zone_id}, a private zone ({domain}); "
                           "clients and ACM's validation need a public hosted zone"])


def check_records(settings: Settings) -> None:
    """The records already at dnsName must allow this mode's (a switch of mode needs two runs)."""
    name = settings.dns_name.rstrip(".").lower()
    found = aws.route53.get_records(zone_id=settings.dns_zone_id,
                                    name_regex="^" + name.replace(".", "\\.") + "\\.?$")
    existing = [RecordSet(type=r.type, set_identifier=r.set_identifier or "", multivalue=bool(r.multi_value_answer))
                for r in found.resource_record_sets]
    if problem := routing_conflict(settings.autoscale, settings.dns_zone_id, name, existing):
        raise ConfigError([problem])


def uri_lists(settings: Settings, hosts: list[str]) -> tuple[list[str], list[str]]:
    """(stun_uris, turn_uris): the URIs that work first. `turns:` names the certificate's
    host on every TLS port (443 first) when it is trusted; with the self-signed default
    it stays last, per address, since browsers refuse it."""
    stun, turn = [], []
    for host in hosts:
        for port in (settings.tls.ports if not settings.tls.host else ()) or (settings.tls.coturn_port,):
            s, t = server_uris(host, stun_port=settings.stun_port, tls_port=port, turn=settings.turn)
            stun += [u for u in s if u not in stun]
            turn += [u for u in t if u not in turn]
    plain = [u for u in turn if not u.startswith("turns:")]
    secure = [u for u in turn if u.startswith("turns:")]
    if settings.tls.host and settings.turn:
        secure = [f"turns:{settings.tls.host}:{port}?transport=tcp" for port in settings.tls.ports]
    elif settings.tls.trusted:
        secure = []  # a certificate naming only wildcards, and no dnsName: no host name to give turns:
    return stun, plain + secure


def uris(settings: Settings, hosts: list[pulumi.Input[str]]) -> tuple[pulumi.Output, pulumi.Output]:
    """(stun_uris, turn_uris) for the given hosts, once their values are known."""
    every = pulumi.Output.all(*hosts).apply(lambda hs: uri_lists(settings, hs))
    return every.apply(lambda u: u[0]), every.apply(lambda u: u[1])


def build_stack(settings: Settings) -> dict[str, Any]:
    """Create every resource; returns the stack outputs."""
    check_quotas(settings)
    found = look_up(settings)
    prefix = settings.prefix
    tags = settings.common_tags
    namespace = metrics.namespace(settings.stack)

    network = Network(prefix, NetworkArgs(cidr=settings.vpc_cidr, zones=found.zones, tags=tags, ipv6=settings.ipv6))
    # Autoscale: the load balancer's own group, which the instances' group refers to.
    nlb_firewall = LoadBalancerFirewall(prefix, load_balancer_firewall_args(settings, network)) \
        if settings.autoscale else None
    firewall = Firewall(prefix, firewall_args(settings, network.vpc.id,
                                              nlb_firewall.security_group.id if nlb_firewall else None))
    key_pair = SshKeyPair(prefix, KeyPairArgs(tags=tags))
    # ACM's certificate (with a zone) keeps its key in ACM; else self-signed or the user's, via SSM.
    certificate = None if settings.tls.acm else TlsCertificate(prefix, TlsArgs(
        domain=settings.tls_domain, certificate_pem=settings.tls_certificate,
        private_key_pem=pulumi.Output.secret(settings.tls_private_key) if settings.tls.user else None))
    acm = AcmCertificate(prefix, AcmArgs(domain=settings.dns_name, zone_id=settings.dns_zone_id,
                                         exportable=settings.tls.acm_export, tags=tags)) if settings.tls.acm else None
    secrets = ServerSecrets(prefix, SecretsArgs(
        path=settings.ssm_path, turn=settings.turn,
        tls_certificate_pem=certificate.certificate_pem if certificate else None,
        tls_private_key_pem=certificate.private_key_pem if certificate else None, tags=tags,
        turn_secret=pulumi.Output.secret(settings.turn_secret) if settings.turn_secret else None,
        previous_turn_secret=pulumi.Output.secret(settings.turn_secret_previous)
        if settings.turn_secret_previous else None))
    logs = ServerLogs(prefix, LogsArgs(
        log_group_name=metrics.log_group_name(settings.project, settings.stack),
        retention_days=settings.log_retention_days, metric_namespace=namespace,
        session_logging=settings.session_logging, tags=tags))
    exported_arn = acm.certificate_arn if acm and settings.tls.acm_export else None
    # Autoscale: the load balancer first, so that the role and the boot script can name its
    # IPv6 target groups (each instance registers its own IPv6 address in them).
    endpoint = LoadBalancedEndpoint(prefix, LoadBalancerArgs(
        vpc_id=network.vpc.id, subnet_ids=network.subnet_ids, stun_port=settings.stun_port,
        tls_ports=settings.tls.ports, coturn_port=settings.tls.coturn_port, tags=tags,
        certificate_arn=acm.certificate_arn if acm else None, ipv6=settings.ipv6,
        deregistration_delay=settings.drain_seconds,
        security_group_ids=[nlb_firewall.security_group.id])) if nlb_firewall else None
    ipv6_groups = endpoint.ipv6_target_groups if endpoint else []
    pinned = secrets.pinned_names
    # The instance package: what every instance of this stack runs (its digest changes with a
    # new version of a secret or certificate, so a launch template change rolls it out).
    built = pulumi.Output.all(pinned, exported_arn, *[arn for arn, _ in ipv6_groups]).apply(
        lambda a: instance_package.build(settings, BootInputs(
            parameters=a[0], certificate_arn=a[1] or "", ipv6_target_groups=tuple(
                TargetGroupPort(arn, port) for arn, (_, port) in zip(a[2:], ipv6_groups)))))
    artifact = InstancePackage(prefix, PackageArgs(
        content_base64=built.apply(lambda p: base64.b64encode(p.data).decode()), key=built.apply(lambda p: p.key),
        tags=tags))
    access = InstanceAccess(prefix, AccessArgs(
        parameter_arns=secrets.parameter_arns, log_group_arn=logs.log_group.arn,
        metric_namespace=namespace, tags=tags, exported_certificate_arn=exported_arn,
        ipv6_target_group_arns=[arn for arn, _ in ipv6_groups], turn_secret_arn=secrets.turn_secret_arn,
        package_object_arn=artifact.object_arn))
    spec = LaunchSpec(
        ami_id=found.ami_id, root_device_name=found.root_device_name, instance_type=settings.instance_type,
        key_name=key_pair.key_name, instance_profile_name=access.profile.name,
        instance_profile_arn=access.profile.arn, security_group_id=firewall.security_group.id,
        root_volume_size=settings.root_volume_size, tags=tags, ipv6=settings.ipv6)
    # The user data names the stored object (so the launch waits for its upload) by its digest.
    boot_script = pulumi.Output.all(artifact.bucket_name, built, artifact.object_key).apply(
        lambda a: render_user_data(settings, a[0], a[1]))
    # Instances boot only once the role may read what the script fetches.
    fleet_opts = pulumi.ResourceOptions(depends_on=[access, artifact, secrets, logs, *([acm] if acm else [])])

    outputs: dict[str, Any] = {"mode": settings.mode, "region": settings.region}
    if endpoint:
        fleet = AutoscaleFleet(prefix, AutoscaleFleetArgs(
            spec=spec, subnet_ids=network.subnet_ids, min_size=settings.min_size,
            desired_capacity=settings.desired_capacity, max_size=settings.max_size,
            user_data=boot_script, target_group_arns=endpoint.target_group_arns,
            health_check_grace_period=settings.health_check_grace_period,
            min_healthy_percentage=settings.min_healthy_percentage,
            scaling=SessionsScaling(namespace, settings.scaling_sessions_target)
            if settings.scaling_metric == "sessions" else CpuScaling(settings.scaling_cpu_target),
            delete_timeout=group_delete_timeout(settings.drain_seconds)),
            opts=fleet_opts)
        ScaleInDrain(prefix, ScaleInDrainArgs(
            group_name=fleet.group_name, group_arn=fleet.group.arn, role_id=access.role.id,
            hook_name=drain.hook_name(settings), heartbeat_seconds=drain.hook_timeout(settings)))
        LaunchHook(prefix, LaunchHookArgs(group_name=fleet.group_name, hook_name=launch.hook_name(settings),
                                          heartbeat_seconds=launch.HOOK_TIMEOUT_SECONDS))
        if ipv6_groups:
            Ipv6TargetReconciler(prefix, ReconcilerArgs(
                group_name=fleet.group_name, target_group_arns=[arn for arn, _ in ipv6_groups],
                log_group_name=f"/{settings.project}/{settings.stack}/ipv6-targets",
                log_retention_days=settings.log_retention_days, tags=tags))
        hosts: list[pulumi.Input[str]] = [endpoint.dns_name]
        if settings.dns_name:
            DnsEndpoint(prefix, DnsArgs(zone_id=settings.dns_zone_id, name=settings.dns_name,
                                        alias_target=(endpoint.dns_name, endpoint.zone_id),
                                        alias_ipv6=settings.ipv6))
        outputs.update(asg_name=fleet.group_name, load_balancer_dns_name=endpoint.dns_name)
        asg_name, instance_ids, min_size = fleet.group_name, [], settings.min_size
    else:
        fleet = StaticFleet(prefix, StaticFleetArgs(
            spec=spec, subnet_ids=network.subnet_ids, count=settings.instance_count,
            user_data_for=lambda eip: pulumi.Output.all(artifact.bucket_name, built, eip, artifact.object_key).apply(
                lambda a: render_user_data(settings, a[0], a[1], expected_public_ip=a[2]))),
            opts=fleet_opts)
        document = DrainDocument(prefix, DrainDocumentArgs(
            document_name=drain.hook_name(settings), drain_seconds=settings.drain_seconds, tags=tags))
        outputs.update(drain_document_name=document.document.name)
        # Without a DNS name each instance is named by both its addresses (IPv6 bracketed in URIs).
        hosts = [*fleet.public_ips, *fleet.ipv6_addresses]
        if settings.dns_name:
            DnsEndpoint(prefix, DnsArgs(zone_id=settings.dns_zone_id, name=settings.dns_name,
                                        addresses=fleet.public_ips, ipv6_addresses=fleet.ipv6_addresses))
        outputs.update(instance_ids=fleet.instance_ids, public_ips=fleet.public_ips)
        if settings.ipv6:
            outputs.update(public_ipv6s=fleet.ipv6_addresses)
        asg_name, instance_ids, min_size = None, fleet.instance_ids, settings.instance_count
    if settings.dns_name:
        hosts = [settings.dns_name]
    monitoring = Monitoring(prefix, MonitoringArgs(
        region=settings.region, metric_namespace=namespace, asg_name=asg_name, instance_ids=instance_ids,
        min_size=min_size, cpu_high_percent=settings.cpu_high_percent, alarm_email=settings.alarm_email,
        session_logging=settings.session_logging, turn=settings.turn, total_quota=settings.total_quota,
        tags=tags))

    stun_uris, turn_uris = uris(settings, hosts)
    outputs.update(
        stun_uris=stun_uris,
        key_pair_name=key_pair.key_name,
        private_key_pem=key_pair.private_key_pem,
        dashboard_url=monitoring.dashboard_url,
        ami_name=found.ami_name,
        boot_script_sha256=built.apply(lambda p: p.sha256),
        instance_package_bucket=artifact.bucket_name,
    )
    if certificate:
        outputs.update(tls_certificate_pem=certificate.certificate_pem)
    if acm:
        outputs.update(tls_certificate_arn=acm.certificate_arn)
    if settings.turn:
        outputs.update(turn_uris=turn_uris, turn_shared_secret=secrets.turn_secret,
                       turn_secret_parameter=secrets.turn_secret_parameter,
                       turn_secret_app_policy=secrets.app_policy)
    return outputs
