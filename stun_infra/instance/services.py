"""The `services` stage: coturn and the SSM agent enabled and (re)started once every file
they read is in place, and stun-infra-configure enabled for every later start.

coturn starts only after this start's configure reached this stage: configure removes
CONFIGURED first, this stage writes it, and coturn's drop-in asserts it (/run is emptied
at every start, so a start whose configure failed never serves with the last start's
addresses)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance.stage import Stage
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

CONFIGURE_UNIT = "stun-infra-configure.service"
CONFIGURED = "/run/stun-infra/configured"


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    return Stage("services", enable=("coturn.service", "amazon-ssm-agent.service"),
                 script=f"systemctl enable {CONFIGURE_UNIT}\ninstall -D -m 0644 /dev/null {CONFIGURED}\n")
