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


def test_sessions_policy_tracks_live_sessions_per_in_service_instance(sessions_run):
    (policy,) = sessions_run.of_type(POLICY)
    config = policy.inputs["targetTrackingConfiguration"]
    assert policy.name == "stun-infra-test-sessions-target" and policy.inputs["policyType"] == "TargetTrackingScaling"
    assert policy.inputs["autoscalingGroupName"] == sessions_run.outputs["asg_name"]
    assert config["targetValue"] == 400 and "predefinedMetricSpecification" not in config
    queries = {q["id"]: q for q in config["customizedMetricSpecification"]["metrics"]}
    assert queries["sessions"] == {"id": "sessions", "returnData": False, "metricStat": {
        "metric": {"namespace": metrics.namespace("test"), "metricName": metrics.LIVE_SESSIONS},  # the fleet series
        "stat": "Sum", "period": 60}}
    assert queries["inservice"] == {"id": "inservice", "returnData": False, "metricStat": {
        "metric": {"namespace": "AWS/AutoScaling", "metricName": "GroupInServiceInstances",
                   "dimensions": [{"name": "AutoScalingGroupName", "value": sessions_run.outputs["asg_name"]}]},
        "stat": "Average", "period": 60}}
    per_instance = queries["per_instance"]
    assert per_instance["expression"] == SESSIONS_PER_INSTANCE == "sessions / inservice"
    # exactly one query returns data: the single time series target tracking follows
    assert [q["id"] for q in queries.values() if q["returnData"]] == ["per_instance"]
