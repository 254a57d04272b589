"""InstanceAccess, built alone: the role reads exactly the parameters it is given."""

import json

from stun_infra.cloud.components.access import AccessArgs, InstanceAccess
from tests.cloud.components.conftest import ACCOUNT, REGION, TAGS, build_alone, component

PARAMETER = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/stun-infra/alone/turn-secret"


def test_the_access_alone_lets_the_role_read_the_parameters_given():
    run = build_alone(lambda: InstanceAccess("alone", AccessArgs(
        parameter_arns=[PARAMETER], log_group_arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/stun-infra/alone",
        metric_namespace="STUN/alone", tags=TAGS)))
    component(run, "stun-infra:access:InstanceAccess")
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert [s for s in policy["Statement"] if s.get("Resource") in (PARAMETER, [PARAMETER])]
