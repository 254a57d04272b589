"""WarmPoolTerminations, built alone: a function told its group, allowed on that group only."""

import json

from stun_infra.cloud.components.warm_pool import WarmPoolTerminations, WarmPoolTerminationsArgs
from tests.cloud.components.conftest import ACCOUNT, REGION, TAGS, build_alone, component

GROUP_ARN = (f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0123abcd-0000-4000-8000-000000000000:"
             "autoScalingGroupName/g")


def test_the_pool_terminations_alone_complete_actions_of_their_group_only():
    run = build_alone(lambda: WarmPoolTerminations("alone", WarmPoolTerminationsArgs(
        group_name="g", group_arn=GROUP_ARN, log_group_name="/stun-infra/alone/warm-pool-terminations",
        log_retention_days=30, tags=TAGS)))
    component(run, "stun-infra:fleet:WarmPoolTerminations")
    assert run.one("aws:lambda/function:Function").inputs["environment"]["variables"] == {"GROUP_NAME": "g"}
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert policy["Statement"][0]["Resource"] == [GROUP_ARN]
