"""ServerLogs, built alone: the log group with the retention asked for."""

from stun_infra.cloud.components.logs import LogsArgs, ServerLogs
from tests.cloud.components.conftest import TAGS, build_alone, component


def test_the_logs_alone_keep_the_group_for_the_retention_asked():
    run = build_alone(lambda: ServerLogs("alone", LogsArgs(log_group_name="/stun-infra/alone", retention_days=30,
                                                          metric_namespace="STUN/alone", session_logging=False,
                                                          tags=TAGS)))
    component(run, "stun-infra:monitoring:ServerLogs")
    group = run.one("aws:cloudwatch/logGroup:LogGroup")
    assert (group.inputs["name"], group.inputs["retentionInDays"]) == ("/stun-infra/alone", 30)
