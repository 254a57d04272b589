"""Names AWS derives from the program's: how long a logical name may be so that the name
Pulumi generates from it fits AWS's limit."""

from __future__ import annotations

import hashlib

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
