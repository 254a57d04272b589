"""The `cloudwatch-agent` stage: the agent's config (coturn's log to the stack's log group,
CWAgent metrics), shipped in the package and loaded with the agent's own control program.

The agent runs as the unprivileged user its package creates (`run_as_user`, see
downloads.CLOUDWATCH_AGENT_USER), not root: what it ships needs no privilege (memory and disk
figures from /proc and statfs, coturn's log through that user's group on its directory:
stun_infra.instance.coturn.LOG_READER); the role's credentials come from IMDS."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from stun_infra.instance import metrics
from stun_infra.instance.coturn import INSTANCE_PATHS
from stun_infra.instance.downloads import CLOUDWATCH_AGENT_USER
from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

CONFIG_PATH = "/etc/stun-infra/amazon-cloudwatch-agent.json"
CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"


def agent_config(settings: Settings, log_file: str = INSTANCE_PATHS.log_file) -> str:
    """The CloudWatch agent's JSON config."""
    text = render(
        "amazon-cloudwatch-agent.json.j2",
        namespace=metrics.namespace(settings.stack),
        log_group_name=metrics.log_group_name(settings.project, settings.stack),
        log_file=log_file,
        autoscale=settings.autoscale,
        run_as_user=CLOUDWATCH_AGENT_USER,
    )
    return json.dumps(json.loads(text), indent=2) + "\n"


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    return Stage("cloudwatch-agent", files=(InstanceFile(CONFIG_PATH, agent_config(settings)),),
                 script=f'"{CTL}" -a fetch-config -m ec2 -s -c "file:{CONFIG_PATH}"\n')
