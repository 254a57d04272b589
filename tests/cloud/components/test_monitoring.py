"""Monitoring, built alone: a dashboard, and the alarms notify the topic."""

from stun_infra.cloud.components.monitoring import Monitoring, MonitoringArgs
from tests.cloud.components.conftest import REGION, TAGS, build_alone, component


def test_the_monitoring_alone_has_a_dashboard_and_alarms_that_notify_its_topic():
    run = build_alone(lambda: Monitoring("alone", MonitoringArgs(
        region=REGION, metric_namespace="STUN/alone", asg_name=None, instance_ids=["i-1"], min_size=1,
        session_logging=False, turn=True, total_quota=0, cpu_high_percent=80, alarm_email="", tags=TAGS)))
    component(run, "stun-infra:monitoring:Monitoring")
    topic = run.one("aws:sns/topic:Topic")
    alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert run.one("aws:cloudwatch/dashboard:Dashboard") and alarms
    assert all(topic.state["arn"] in a.inputs["alarmActions"] for a in alarms)
