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



# Regions launched before 2019-03-20 are enabled in every account and cannot be disabled; every
# later region is an opt-in region, disabled until the account enables it.
# https://docs.aws.amazon.com/accounts/latest/reference/manage-acct-regions.html
DEFAULT_ENABLED_REGIONS = frozenset((
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
    "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2"))
# Settings a region may set for itself (stun-infra:regionOverrides): what cannot be the same everywhere.
OVERRIDABLE_KEYS = ("instanceType", "vpcCidr")
# "Endpoint groups per accelerator, across all listeners: 42" (not adjustable); the accelerator
# has one UDP and one TCP listener, each with one endpoint group per region.
# https://docs.aws.amazon.com/global-accelerator/latest/dg/limits-global-accelerator.html
GA_ENDPOINT_GROUPS = 42
GA_LISTENERS = 2
# "Endpoints per endpoint group - EC2 instances: 10" (adjustable; a new account has 10).
GA_INSTANCES_PER_GROUP = 10


def is_opt_in(region: str) -> bool:
    return known_regions().get(region) == SUPPORTED_PARTITION and region not in DEFAULT_ENABLED_REGIONS


def parse_override(entry: str) -> tuple[str, str, str] | None:
    """`REGION:KEY=VALUE` as (region, key, value), or None when it is not in that form."""
    region, colon, rest = entry.partition(":")
    key, equals, value = rest.partition("=")
    return (region, key, value) if colon and equals and region and key and value else None


def region_list_problem(regions: tuple[str, ...]) -> str | None:
    """Why a list of region names cannot be used (each an aws region, none twice), or None."""
    for region in regions:
        if region and region_problem(region) is None:
            continue
        shown = json.dumps(region)
        partition = known_regions().get(region)
        if partition is not None:
            return (f"lists {shown}, a region of the {partition} partition; stun-infra deploys only to "
                    f"{SUPPORTED_PARTITION} regions")
        near = difflib.get_close_matches(region, known_regions(), n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        return (f"lists {shown}, which is not an AWS region; {hint}regions: "
                + ", ".join(r for r, p in known_regions().items() if p == SUPPORTED_PARTITION))
    if twice := sorted({r for r in regions if regions.count(r) > 1}):
        return f"lists {twice[0]} twice"
    return None
