"""The checks that run before any resource exists: AWS limits the config can push past,
and the look-ups (zones and their offerings, the AMI, the hosted zone and its records),
each refusing with one line naming the key. They return what they looked up.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.args import firewall_args
from stun_infra.cloud.components.endpoint import RecordSet, routing_conflict
from stun_infra.cloud.components.firewall import openings
from stun_infra.common.project import PROJECT
from stun_infra.settings import DEBIAN_ARCH, ConfigError, Settings

DEBIAN_OWNER = "136693071363"  # Debian's official AWS account
# "Inbound or outbound rules per security group: 60", counted separately for IPv4 and
# IPv6 rules (adjustable, but a new account has 60).
# https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups
MAX_RULES_PER_GROUP = 60


@dataclass(frozen=True)
class Lookups:
    """What the checks before any resource looked up, for the wiring to use."""

    zones: tuple[str, ...]
    ami_id: str
    ami_name: str
    root_device_name: str
    zone_domain: str = ""  # the hosted zone's domain, when the stack has a DNS name
    records: tuple[RecordSet, ...] = ()  # the record sets already at the DNS name


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


def region_key(settings: Settings, key: str) -> str:
    """The key to name for a region's value of `key`: regionOverrides when the region overrides it."""
    overridden = any(entry.startswith(f"{settings.region}:{key}=") for entry in settings.region_overrides)
    return f"{PROJECT}:regionOverrides ({settings.region}:{key})" if overridden else f"{PROJECT}:{key}"


def override_hint(settings: Settings, key: str, example: str) -> str:
    """How an added region gets its own value of `key`."""
    if not settings.added_region:
        return ""
    return f"; or give {settings.region} its own: {PROJECT}:regionOverrides [\"{settings.region}:{key}={example}\"]"


def look_up(settings: Settings, provider: pulumi.ProviderResource | None = None) -> Lookups:
    """The zones to use, the AMI and (with a DNS name) the zone and its records, each checked;
    an added region's through its provider (the hosted zone is global: the home region looks)."""
    invoke = pulumi.InvokeOptions(provider=provider) if provider else None
    # No `state` filter: a zone's state (available, impaired, constrained...) changes with
    # events, and a choice that followed it would move a subnet, and everything in it, on
    # the next `pulumi up`. The region's standard zones and their offerings are stable.
    available = aws.get_availability_zones(
        filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
        opts=invoke)
    if len(available.names) < settings.availability_zones:
        raise ConfigError([
            f"{PROJECT}:availabilityZones: got {settings.availability_zones}, but region {settings.region} "
            f"has {len(available.names)} zones ({', '.join(available.names)}); "
            f"choose at most {len(available.names)} (and at least 2)"])
    # Newer and Graviton types are not offered in every zone: launching there would fail.
    offered = set(aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type",
                                                            values=[settings.instance_type])],
        opts=invoke).locations)
    usable = [zone for zone in sorted(available.names) if zone in offered]
    if len(usable) < settings.availability_zones:
        raise ConfigError([
            f"{region_key(settings, 'instanceType')}: got {settings.instance_type}, which region {settings.region} "
            f"offers in {len(usable)} zones ({', '.join(usable) or 'none'}) but {PROJECT}:availabilityZones "
            f"asks for {settings.availability_zones}; choose an instance type offered in enough zones"
            + (f" or at most {len(usable)} zones" if len(usable) >= 2 else "")
            + override_hint(settings, "instanceType", "TYPE")])
    ami = aws.ec2.get_ami(
        owners=[DEBIAN_OWNER], most_recent=True,
        filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[f"debian-12-{DEBIAN_ARCH[settings.architecture]}-*"]),
                 aws.ec2.GetAmiFilterArgs(name="architecture", values=[settings.architecture]),
                 aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
                 aws.ec2.GetAmiFilterArgs(name="root-device-type", values=["ebs"])], opts=invoke)
    home_zone = settings.dns_zone_id and not settings.added_region
    zone_domain = check_zone(settings) if home_zone else ""
    records = check_records(settings) if home_zone else ()
    return Lookups(zones=tuple(usable[:settings.availability_zones]), ami_id=ami.id,
                   ami_name=ami.name, root_device_name=ami.root_device_name, zone_domain=zone_domain,
                   records=records)


def check_zone(settings: Settings) -> str:
    """dnsName must lie in the zone, and the zone be public: ACM validates through it and
    clients resolve the name through it. Returns the zone's domain."""
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
    return domain


def entry_routing(settings: Settings) -> str:
    """The routing of the records at dnsName (a key of endpoint.ROUTING)."""
    if settings.global_accelerator:
        return "accelerator"
    if settings.multi_region:
        return "latency"
    return "simple" if settings.autoscale else "multivalue"


def check_records(settings: Settings) -> tuple[RecordSet, ...]:
    """The records already at dnsName must allow this mode's (a switch of mode needs two runs); returns them."""
    name = settings.dns_name.rstrip(".").lower()
    found = aws.route53.get_records(zone_id=settings.dns_zone_id,
                                    name_regex="^" + name.replace(".", "\\.") + "\\.?$")
    existing = [RecordSet(type=r.type, set_identifier=r.set_identifier or "", multivalue=bool(r.multi_value_answer),
                          alias_target=(r.alias_target.dns_name or "") if r.alias_target else "")
                for r in found.resource_record_sets]
    if problem := routing_conflict(entry_routing(settings), settings.dns_zone_id, name, existing):
        raise ConfigError([problem])
    return tuple(existing)
