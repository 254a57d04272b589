"""The frozen, validated settings every side reads, and the error that refuses bad ones."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from functools import cached_property

from stun_infra.common.names import AUTONAME_SUFFIX, fitted
from stun_infra.common.project import PROJECT
from stun_infra.settings.tls import TlsPlan, plan_tls

DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}  # architecture_of() -> Debian's name for it
# The longest stack name (40) gives the longest prefix every AWS name limit was checked against;
# an added region's prefix, which carries the region, is cut (and hashed) to fit in it.
LONGEST_PREFIX = len(f"{PROJECT}-") + 40
INSTANCE_TYPE = re.compile(r"(?P<family>[a-z]+)(?P<gen>\d+)(?P<attrs>[a-z-]*)\.(?P<size>[a-z0-9]+)")


class ConfigError(ValueError):
    """Bad stack config; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n" + "\n".join(f"  - {p}" for p in problems))


def architecture_of(instance_type: str) -> str:
    """arm64 for Graviton families: a `g` among the attributes after the generation, or a1
    (the first Graviton, named before that convention)."""
    m = INSTANCE_TYPE.fullmatch(instance_type)
    if not m:
        raise ValueError(instance_type)
    return "arm64" if "g" in m["attrs"] or (m["family"], m["gen"]) == ("a", "1") else "x86_64"


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    region: str
    mode: str
    instance_count: int
    min_size: int
    desired_capacity: int
    max_size: int
    instance_type: str
    ssh_allowed_cidrs: tuple[str, ...]
    turn: bool
    ipv6: bool
    vpc_cidr: str
    availability_zones: int
    realm: str
    stun_port: int
    tls_ports: tuple[int, ...]  # as configured; () = automatic: `tls.ports` is what is used
    relay_min_port: int
    relay_max_port: int
    user_quota: int
    total_quota: int
    max_bps: int
    tls_domain: str
    tls_certificate: str
    tls_private_key: str = field(repr=False)
    turn_secret: str = field(repr=False)           # "" = the generated secret
    turn_secret_previous: str = field(repr=False)  # "" = no rotation under way
    turn_secret_rotated_at: str
    root_volume_size: int
    session_logging: bool
    log_retention_days: int
    alarm_email: str
    cpu_high_percent: int
    scaling_cpu_target: int
    scaling_metric: str
    scaling_sessions_target: int
    drain_seconds: int
    min_healthy_percentage: int
    health_check_grace_period: int
    warm_pool: str                        # "off" or the pool's state
    warm_pool_min_size: int
    warm_pool_max_prepared_capacity: int  # -1: the group's maxSize
    warm_pool_reuse_on_scale_in: bool
    dns_zone_id: str
    dns_name: str
    tags: tuple[tuple[str, str], ...]
    regions: tuple[str, ...] = ()  # () = the home region alone
    region_overrides: tuple[str, ...] = ()  # REGION:KEY=VALUE
    opt_in_regions: tuple[str, ...] = ()
    global_accelerator: bool = False
    home_region: str = ""  # set on a region's own settings (for_region): the stack's aws:region

    @property
    def prefix(self) -> str:
        """The one name every resource name derives from: an added region's carry the region."""
        base = f"{self.project}-{self.stack}"
        return fitted(base, self.region, LONGEST_PREFIX + AUTONAME_SUFFIX) if self.added_region else base

    @property
    def home(self) -> str:
        """aws:region: the region with the default provider and a one-region stack's names."""
        return self.home_region or self.region

    @property
    def added_region(self) -> bool:
        return self.region != self.home

    @property
    def deploy_regions(self) -> tuple[str, ...]:
        """Every region with a fleet, the home region first."""
        return (self.home, *(r for r in self.regions if r != self.home))

    @property
    def multi_region(self) -> bool:
        return len(self.deploy_regions) > 1

    def for_region(self, region: str) -> "Settings":
        """The settings one region's fleet is built from: its name, and its overrides."""
        values = {"instanceType": self.instance_type, "vpcCidr": self.vpc_cidr}
        for entry in self.region_overrides:
            where, colon, rest = entry.partition(":")
            key, _, value = rest.partition("=")
            if where == region:
                values[key] = value
        return replace(self, region=region, home_region=self.home, instance_type=values["instanceType"],
                       vpc_cidr=str(ipaddress.ip_network(values["vpcCidr"])))

    @property
    def global_entry(self) -> bool:
        """One name or address in front of the regions: several regions, or the accelerator."""
        return self.multi_region or self.global_accelerator

    @property
    def region_dns_name(self) -> str:
        """This region's own name under dnsName when a global entry holds dnsName, else dnsName."""
        return f"{self.region}.{self.dns_name}" if self.dns_name and self.global_entry else self.dns_name

    @property
    def regional_dns_names(self) -> tuple[str, ...]:
        """Every region's own name (none without a global entry): what certificates also cover."""
        if not (self.dns_name and self.global_entry):
            return ()
        return tuple(f"{region}.{self.dns_name}" for region in self.deploy_regions)

    @property
    def architecture(self) -> str:
        return architecture_of(self.instance_type)

    @property
    def autoscale(self) -> bool:
        return self.mode == "autoscale"

    @property
    def warm_pool_on(self) -> bool:
        return self.autoscale and self.warm_pool != "off"

    @cached_property
    def tls(self) -> TlsPlan:
        """Ports, certificate source, where TLS ends and the name: decided once, read by every side."""
        return plan_tls(autoscale=self.autoscale, configured_ports=self.tls_ports, certificate=self.tls_certificate,
                        zone_id=self.dns_zone_id, dns_name=self.dns_name)

    @property
    def common_tags(self) -> dict[str, str]:
        return {"Project": self.project, "Stack": self.stack, "ManagedBy": "pulumi", **dict(self.tags)}

    @property
    def ssm_path(self) -> str:
        """Parameter Store folder for this stack's secrets."""
        return f"/{self.project}/{self.stack}"
