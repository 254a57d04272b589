"""The `services` stage: coturn and the SSM agent enabled and (re)started once every file
they read is in place, and stun-infra-configure enabled for every later start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance.stage import Stage
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

CONFIGURE_UNIT = "stun-infra-configure.service"


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    return Stage("services", enable=("coturn.service", "amazon-ssm-agent.service"),
                 script=f"systemctl enable {CONFIGURE_UNIT}\n")
