"""The `secrets` stage: the TURN secret and the TLS certificate and key, read from Parameter
Store with the instance role (pinned versions, see boot_inputs.ParameterNames).

They stay in shell variables for the `coturn` stage, which writes them and unsets them; they
are never in the package, the user data or a log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance.stage import Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    return Stage("secrets", script=render("stages/secrets.sh.j2", boot=boot))
