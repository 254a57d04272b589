"""What every component shares: its type token and how children are named and tagged."""

from __future__ import annotations

import pulumi

PACKAGE = "stun-infra"


def child_opts(parent: pulumi.Resource, **extra) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **extra)


def tagged(tags: dict[str, str], name: str, **more: str) -> dict[str, str]:
    """Tags layered as the AWS modules do: Name, then the stack's common tags, then per-resource."""
    return {"Name": name, **tags, **more}
