"""Write the AWS facts `plan` checks offline, taken from the pinned botocore and moto.

    .venv/bin/python scripts/extract_aws_data.py

- stun_infra/data/regions.json: every region botocore's endpoint data knows, by
  partition (settings validates `aws:region` against it).
- stun_infra/data/zones.json.gz: per region, the availability zones (name, zone id) and
  which zones offer which instance type: the snapshot of AWS's DescribeAvailabilityZones
  and DescribeInstanceTypeOfferings that moto ships. `plan` and the tests answer the
  program's zone and offering look-ups from it.
- stun_infra/data/instance_types.json.gz: per instance type, its memory (MiB) and default
  vCPUs, moto's snapshot of AWS's DescribeInstanceTypes: the instance's connection-tracking
  table is sized from them (stun_infra/instance/conntrack.py).

Vendored rather than importing moto at run time: moto (and its server extras) is a test
tool of ~40 MB that `pulumi up` never needs; this is ~20 KB. tests/cloud/test_aws_data.py
checks the files equal what this script extracts from the installed (pinned) versions,
so bumping the pin in pyproject.toml means running this script in the same commit.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import defaultdict
from importlib import metadata
from importlib.resources import files
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "stun_infra" / "data"
REGIONS_FILE = DATA_DIR / "regions.json"
ZONES_FILE = DATA_DIR / "zones.json.gz"
INSTANCE_TYPES_FILE = DATA_DIR / "instance_types.json.gz"


def regions() -> dict:
    import botocore.session

    session = botocore.session.get_session()
    return {"source": f"botocore {metadata.version('botocore')} endpoint data (ec2)",
            "partitions": {p: sorted(session.get_available_regions("ec2", partition_name=p))
                           for p in sorted(session.get_available_partitions())}}


def zones() -> dict:
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend

    offerings_dir = files("moto.ec2") / "resources" / "instance_type_offerings" / "availability-zone"
    out: dict[str, dict] = {}
    for region, region_zones in sorted(RegionsAndZonesBackend.zones.items()):
        entry: dict = {"zones": [[z.name, z.zone_id] for z in sorted(region_zones, key=lambda z: z.name)]}
        path = offerings_dir / f"{region}.json.gz"
        if path.is_file():
            by_type: dict[str, set[str]] = defaultdict(set)
            for offer in json.loads(gzip.decompress(path.read_bytes())):
                by_type[offer["InstanceType"]].add(offer["Location"])
            # Grouped by the set of zones: most types are offered in every zone of a region.
            groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
            for instance_type, where in sorted(by_type.items()):
                groups[tuple(sorted(where))].append(instance_type)
            entry["offerings"] = [{"zones": list(k), "types": v} for k, v in sorted(groups.items())]
        out[region] = entry
    return {"source": f"moto {metadata.version('moto')} (AWS DescribeAvailabilityZones and "
                      "DescribeInstanceTypeOfferings --location-type availability-zone)",
            "regions": out}


def instance_types() -> dict:
    snapshot = json.loads(gzip.decompress((files("moto.ec2") / "resources" / "instance_types.json.gz").read_bytes()))
    return {"source": f"moto {metadata.version('moto')} (AWS DescribeInstanceTypes: MemoryInfo.SizeInMiB, "
                      "VCpuInfo.DefaultVCpus)",
            "types": {name: [t["MemoryInfo"]["SizeInMiB"], t["VCpuInfo"]["DefaultVCpus"]]
                      for name, t in sorted(snapshot.items())}}


def gzip_json_bytes(data: dict) -> bytes:
    """Deterministic gzip (no file name, no timestamp) so a re-run changes nothing."""
    return gzip.compress(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), mtime=0)


def regions_text(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main() -> int:
    DATA_DIR.mkdir(exist_ok=True)
    REGIONS_FILE.write_text(regions_text(regions()))
    ZONES_FILE.write_bytes(gzip_json_bytes(zones()))
    INSTANCE_TYPES_FILE.write_bytes(gzip_json_bytes(instance_types()))
    print(f"wrote {REGIONS_FILE}, {ZONES_FILE} and {INSTANCE_TYPES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
