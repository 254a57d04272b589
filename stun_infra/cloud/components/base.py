"""What every component shares: its type token and how children are named and tagged."""

from __future__ import annotations

import hashlib

import pulumi

PACKAGE = "stun-infra"


def child_opts(parent: pulumi.Resource, **extra) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **extra)


# Pulumi auto-names a resource `<logical name>-<7 random characters>`.
AUTONAME_SUFFIX = 8


def fitted(prefix: str, role: str, limit: int) -> str:
    """`<prefix>-<role>`, as a logical name whose auto-name fits AWS's `limit` (32 for load
    balancers and target groups): the prefix is cut when needed, and a hash of the whole
    keeps cut names apart."""
    name = f"{prefix}-{role}"
    room = limit - AUTONAME_SUFFIX
    if len(name) <= room:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    keep = room - len(role) - len(digest) - 2
    return f"{prefix[:keep].rstrip('-')}-{digest}-{role}"


def tagged(tags: dict[str, str], name: str, **more: str) -> dict[str, str]:
    """Tags layered as the AWS modules do: Name, then the stack's common tags, then per-resource."""
    return {"Name": name, **tags, **more}
