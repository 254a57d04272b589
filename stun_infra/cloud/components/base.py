"""What every component shares: its type token and how children are named and tagged."""

from __future__ import annotations

import pulumi

# A component's type token is `<PROJECT>:<module>:<Class>`, and the token is part of every
# URN under it: a file can be renamed or split, its components keep their tokens (or get
# aliases). The token's module for each file of components/, where the two names differ or agree.
TYPE_MODULES = {
    "access": "access", "keypair": "access",
    "certificate": "tls", "tls": "tls",
    "drain": "fleet", "fleet": "fleet", "warm_pool": "fleet",
    "endpoint": "endpoint", "reconciler": "endpoint",
    "firewall": "network", "network": "network",
    "logs": "monitoring", "monitoring": "monitoring",
    "secrets": "secrets",
    "artifact": "artifact",
    "entry": "endpoint",
    "region": "region",
}


def child_opts(parent: pulumi.Resource, **extra) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **extra)


def tagged(tags: dict[str, str], name: str, **more: str) -> dict[str, str]:
    """Tags layered as the AWS modules do: Name, then the stack's common tags, then per-resource."""
    return {"Name": name, **tags, **more}
