"""`aws:region`: which regions exist and which partition the program deploys to."""

from __future__ import annotations

import difflib
import json
from functools import cache
from pathlib import Path

# Regions by partition, from botocore's endpoint data (scripts/extract_aws_data.py).
REGIONS_FILE = Path(__file__).resolve().parents[1] / "data" / "regions.json"
# The program names Debian's AMI owner and console URLs of the commercial partition.
SUPPORTED_PARTITION = "aws"


@cache
def known_regions() -> dict[str, str]:
    """Region -> partition, for every region botocore's endpoint data knows."""
    partitions = json.loads(REGIONS_FILE.read_text())["partitions"]
    return {region: partition for partition, regions in partitions.items() for region in regions}


def region_problem(region: str) -> str | None:
    """Why `aws:region` cannot be used, or None."""
    if not region:
        return "aws:region: not set; choose the region, e.g. `pulumi config set aws:region eu-west-3`"
    partition = known_regions().get(region)
    shown = json.dumps(region)  # quoted and escaped: a control character cannot reach the terminal raw
    if partition is None:
        near = difflib.get_close_matches(region, known_regions(), n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        return (f"aws:region: got {shown}, which is not an AWS region; {hint}regions: "
                + ", ".join(r for r, p in known_regions().items() if p == SUPPORTED_PARTITION))
    if partition != SUPPORTED_PARTITION:
        return (f"aws:region: got {shown}, a region of the {partition} partition; stun-infra deploys only to "
                f"{SUPPORTED_PARTITION} regions (it uses Debian's AMIs and console URLs there)")
    return None

