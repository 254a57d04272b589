"""The `metadata` stage: the instance's own addresses, id and region, read from IMDSv2 at
every start (a stopped and started autoscale instance has a new public IPv4).

It exports PUBLIC_IPV4, PRIVATE_IPV4, IPV6 ("" in an IPv4-only subnet), INSTANCE_ID and
REGION to the stages after it. Static mode waits for the Elastic IP its user data names
(kept in INSTANCE_ENV for later starts): relayed addresses must be the final one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance.stage import Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

INSTANCE_ENV = "/var/lib/stun-infra/instance.env"  # written by the user data: EXPECTED_PUBLIC_IPV4=


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    return Stage("metadata", script=render("stages/metadata.sh.j2", instance_env=INSTANCE_ENV))
