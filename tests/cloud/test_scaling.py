"""The group's target-tracking policy under mocks: CPU (the default) or live TURN sessions
per in-service instance by metric math, the target from config."""

from __future__ import annotations

import pytest

from stun_infra.cloud.components.fleet import SESSIONS_PER_INSTANCE
from stun_infra.instance import metrics
from tests.conftest import program

POLICY = "aws:autoscaling/policy:Policy"


@pytest.fixture(scope="module")
def sessions_run():
    return program(mode="autoscale", scalingMetric="sessions", scalingSessionsTarget=400)


def test_cpu_is_the_default_policy(autoscale_run):
    (policy,) = autoscale_run.of_type(POLICY)
    config = policy.inputs["targetTrackingConfiguration"]
    assert policy.name == "stun-infra-test-cpu-target" and policy.inputs["policyType"] == "TargetTrackingScaling"
    assert config["predefinedMetricSpecification"] == {"predefinedMetricType": "ASGAverageCPUUtilization"}
    assert config["targetValue"] == 60 and "customizedMetricSpecification" not in config


def test_sessions_policy_tracks_live_sessions_per_reporting_instance(sessions_run):
    (policy,) = sessions_run.of_type(POLICY)
    config = policy.inputs["targetTrackingConfiguration"]
    assert policy.name == "stun-infra-test-sessions-target" and policy.inputs["policyType"] == "TargetTrackingScaling"
    assert policy.inputs["autoscalingGroupName"] == sessions_run.outputs["asg_name"]
    assert config["targetValue"] == 400 and "predefinedMetricSpecification" not in config
    queries = {q["id"]: q for q in config["customizedMetricSpecification"]["metrics"]}
    assert queries["sessions"] == {"id": "sessions", "returnData": False, "metricStat": {
        "metric": {"namespace": metrics.namespace("test"), "metricName": metrics.LIVE_SESSIONS},  # the fleet series
        "stat": "Sum", "period": 60}}
    assert queries["reporting"] == {"id": "reporting", "returnData": False, "metricStat": {
        "metric": {"namespace": metrics.namespace("test"), "metricName": metrics.HEARTBEAT},  # 1 per instance report
        "stat": "Sum", "period": 60}}
    per_instance = queries["per_instance"]
    assert per_instance["expression"] == SESSIONS_PER_INSTANCE == "sessions / reporting"
    # exactly one query returns data: the single time series target tracking follows
    assert [q["id"] for q in queries.values() if q["returnData"]] == ["per_instance"]


def test_an_instance_whose_reporter_stopped_does_not_lower_the_sessions_per_instance(sessions_run):
    """Three instances carry 300 sessions each; one reporter stops. Per in-service instance the
    fleet would read 200 (and scale in instances with calls); per reporting instance it stays 300."""
    from tests.cloud.test_monitoring import evaluate
    (policy,) = sessions_run.of_type(POLICY)
    (per_instance,) = [q for q in policy.inputs["targetTrackingConfiguration"]["customizedMetricSpecification"]
                       ["metrics"] if q["returnData"]]
    before_and_after = {"sessions": [900.0, 600.0], "reporting": [3.0, 2.0]}
    assert evaluate(per_instance["expression"], before_and_after) == [300.0, 300.0]
