"""AWS's zones and instance type offerings per region, from the snapshot moto ships
(vendored in stun_infra/data/zones.json.gz): how the mock engine answers those look-ups."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ZONES_FILE = Path(__file__).resolve().parents[2] / "data" / "zones.json.gz"


class NoOfflineData(RuntimeError):
    """The snapshot has nothing for this region: `plan` cannot answer what AWS would."""


@dataclass(frozen=True)
class RegionData:
    zones: tuple[tuple[str, str], ...]  # (name, zone id), as DescribeAvailabilityZones lists them
    offerings: dict[str, tuple[str, ...]] | None  # instance type -> zones offering it; None: not in the snapshot


@cache
def region_data(region: str) -> RegionData:
    """AWS's zones and instance type offerings of a region, from the vendored snapshot."""
    snapshot = json.loads(gzip.decompress(ZONES_FILE.read_bytes()))
    entry = snapshot["regions"].get(region)
    if entry is None:
        raise NoOfflineData(f"aws:region: {region} has no zone data in the offline snapshot "
                            f"({snapshot['source']}); `plan` cannot tell which zones it has")
    offerings = None
    if "offerings" in entry:
        offerings = {t: tuple(group["zones"]) for group in entry["offerings"] for t in group["types"]}
    return RegionData(zones=tuple((name, zone_id) for name, zone_id in entry["zones"]), offerings=offerings)


def offered_in(region: str, instance_type: str) -> tuple[str, ...]:
    """Zones of the region that offer the type, as DescribeInstanceTypeOfferings would list them."""
    data = region_data(region)
    if data.offerings is None:
        raise NoOfflineData(
            f"aws:region: the offline snapshot has no instance type offerings for {region}; `plan` cannot tell "
            f"which zones offer {instance_type}. Ask AWS: aws ec2 describe-instance-type-offerings "
            f"--location-type availability-zone --filters Name=instance-type,Values={instance_type} "
            f"--region {region}")
    return data.offerings.get(instance_type, ())

