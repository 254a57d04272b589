"""Dashboard, log group, metric filters, alarms and the agent config, under the mock engine,
in both modes: every counter metric is read with dimensions the reporter publishes it with."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from stun_infra import metrics
from stun_infra.components.fleet import GROUP_METRICS
from stun_infra.settings import load_settings
from stun_infra.userdata import agent_config
from tests.conftest import AGENT_SCHEMA, REGION, program

NAMESPACE = metrics.namespace("test")
STATS = {"Sum", "Average", "Maximum", "Minimum", "SampleCount"}


@pytest.fixture(scope="module")
def static():
    return program(mode="static", instanceCount=3)


@pytest.fixture(scope="module")
def autoscale():
    return program(mode="autoscale", availabilityZones=3, minSize=2, desiredCapacity=3, maxSize=6,
                   alarmEmail="oncall@example.com", logRetentionDays=90)


def dashboard(run) -> dict:
    return json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])


def widget(body: dict, title_start: str) -> dict:
    (found,) = [w for w in body["widgets"] if w["properties"]["title"].startswith(title_start)]
    return found["properties"]


def rows(props: dict) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of each metric row."""
    out = []
    for row in props["metrics"]:
        names = [x for x in row if isinstance(x, str)]
        namespace, metric, dims = names[0], names[1], names[2:]
        assert len(dims) % 2 == 0, row
        out.append((namespace, metric, dict(zip(dims[::2], dims[1::2]))))
    return out


def check_dashboard_body(body: dict, region: str) -> None:
    """The structure CloudWatch's PutDashboard accepts for metric widgets."""
    assert set(body) == {"widgets"} and body["widgets"]
    cells: set[tuple[int, int]] = set()
    for w in body["widgets"]:
        assert w["type"] == "metric"
        assert 0 <= w["x"] and 1 <= w["width"] and w["x"] + w["width"] <= 24 and w["y"] >= 0 and w["height"] >= 1
        mine = {(x, y) for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])}
        assert not cells & mine, f"widget {w['properties']['title']!r} overlaps another"
        cells |= mine
        p = w["properties"]
        assert p["region"] == region and p["stat"] in STATS and p["period"] % 60 == 0
        assert p["view"] in {"timeSeries", "singleValue", "bar", "pie"} and isinstance(p["stacked"], bool)
        assert p["metrics"] and all(isinstance(r, list) and len(r) >= 2 for r in p["metrics"])
        for namespace, metric, dims in rows(p):
            assert namespace and metric and all(dims.values())


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_dashboard_body_is_valid_dashboard_json(mode, static, autoscale):
    run = {"static": static, "autoscale": autoscale}[mode]
    check_dashboard_body(dashboard(run), REGION)
    assert run.outputs["dashboard_url"] == (f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?"
                                            f"region={REGION}#dashboards:name=stun-infra-test")


def test_dashboard_follows_the_stacks_region():
    run = program(mode="static", instanceCount=1, **{"aws:region": "us-east-2"})
    body = dashboard(run)
    check_dashboard_body(body, "us-east-2")
    assert "eu-west-3" not in json.dumps(body) and "us-east-2" in run.outputs["dashboard_url"]


def test_static_dashboard_reads_fleet_bindings_without_dimensions_and_each_instance(static):
    body = dashboard(static)
    ids = static.outputs["instance_ids"]
    assert len(ids) == 3
    assert rows(widget(body, "STUN bindings")) == [(NAMESPACE, m, {}) for m in (
        metrics.BINDING_SUCCESSES, metrics.BINDING_ERRORS, metrics.BINDING_REQUESTS)]
    assert metrics.fleet_dimensions() == [] and [] in metrics.counter_dimension_sets()  # the reporter's fleet datum
    sessions = widget(body, "TURN sessions")
    assert rows(sessions) == [(NAMESPACE, metrics.UDP_ALLOCATIONS, {}), (NAMESPACE, metrics.AUTH_FAILURES, {})]
    assert sessions["title"] == f"TURN sessions: {metrics.UDP_ALLOCATIONS}, {metrics.AUTH_FAILURES}"
    assert rows(widget(body, "Status check")) == [("AWS/EC2", "StatusCheckFailed", {"InstanceId": i}) for i in ids]
    assert rows(widget(body, "CPU")) == [("AWS/EC2", "CPUUtilization", {"InstanceId": i}) for i in ids]
    assert sorted(rows(widget(body, "Network packets")), key=str) == sorted(
        [("AWS/EC2", m, {"InstanceId": i}) for i in ids for m in ("NetworkPacketsIn", "NetworkPacketsOut")], key=str)


def test_autoscale_dashboard_reads_the_fleet_counters_and_the_groups_aws_metrics(autoscale):
    body = dashboard(autoscale)
    group = {"AutoScalingGroupName": autoscale.outputs["asg_name"]}
    # the kernel counters: the fleet series with no dimension, as in static mode
    assert rows(widget(body, "STUN bindings")) == [(NAMESPACE, m, {}) for m in (
        metrics.BINDING_SUCCESSES, metrics.BINDING_ERRORS, metrics.BINDING_REQUESTS)]
    assert rows(widget(body, "TURN sessions")) == [(NAMESPACE, metrics.UDP_ALLOCATIONS, {}),
                                                   (NAMESPACE, metrics.AUTH_FAILURES, {})]
    assert rows(widget(body, "Group capacity")) == [("AWS/AutoScaling", m, group) for m in GROUP_METRICS]
    assert {"GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity", "GroupInServiceInstances",
            "GroupTotalInstances"} <= set(GROUP_METRICS)
    assert rows(widget(body, "CPU")) == [("AWS/EC2", "CPUUtilization", group)]
    assert rows(widget(body, "Network packets")) == [("AWS/EC2", m, group) for m in ("NetworkPacketsIn",
                                                                                    "NetworkPacketsOut")]


@pytest.mark.parametrize("mode,days", [("static", 30), ("autoscale", 90)])
def test_log_group_has_the_configured_retention(mode, days, static, autoscale):
    run = {"static": static, "autoscale": autoscale}[mode]
    group = run.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert group["name"] == "/stun-infra/test/coturn" and group["retentionInDays"] == days


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_one_metric_filter_per_log_metric_on_the_log_group(mode, static, autoscale):
    run = {"static": static, "autoscale": autoscale}[mode]
    filters = {f.inputs["metricTransformation"]["name"]: f.inputs
               for f in run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
    assert set(filters) == {metrics.AUTH_FAILURES}  # the only session line coturn writes without verbose
    for m in metrics.log_metrics(False):
        f = filters[m.name]
        assert f["logGroupName"] == "/stun-infra/test/coturn" and f["pattern"] == m.pattern
        assert f["metricTransformation"] == {"name": m.name, "namespace": NAMESPACE, "value": "1",
                                             "defaultValue": "0", "unit": "Count"}


def test_session_logging_adds_the_verbose_only_filters_and_dashboard_rows():
    run = program(mode="static", instanceCount=1, sessionLogging=True)
    filters = {f.inputs["metricTransformation"]["name"]
               for f in run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
    assert filters == {metrics.SESSIONS_CLOSED, metrics.ALLOCATIONS, metrics.AUTH_FAILURES}
    assert rows(widget(dashboard(run), "TURN sessions")) == [(NAMESPACE, metrics.UDP_ALLOCATIONS, {})] + [
        (NAMESPACE, m.name, {}) for m in metrics.LOG_METRICS]


def test_log_patterns_are_single_quoted_terms():
    """The one filter-pattern form moto evaluates like CloudWatch (see FIELD-NOTES)."""
    for m in metrics.LOG_METRICS:
        assert re.fullmatch(r'"[^"]+"', m.pattern), m.pattern


def alarms(run) -> dict[str, dict]:
    return {a.name: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}


def stalled_queries(alarm: dict) -> dict[str, dict]:
    return {q["id"]: q for q in alarm["metricQueries"]}


def test_autoscale_alarms_and_their_dimensions(autoscale):
    found = alarms(autoscale)
    group = {"AutoScalingGroupName": autoscale.outputs["asg_name"]}
    assert set(found) == {"stun-infra-test-in-service-low", "stun-infra-test-cpu-high",
                          "stun-infra-test-bindings-stalled"}
    low = found["stun-infra-test-in-service-low"]
    assert (low["namespace"], low["metricName"], low["dimensions"], low["threshold"]) == (
        "AWS/AutoScaling", "GroupInServiceInstances", group, 2)
    assert low["comparisonOperator"] == "LessThanThreshold"
    cpu = found["stun-infra-test-cpu-high"]
    assert (cpu["namespace"], cpu["metricName"], cpu["dimensions"]) == ("AWS/EC2", "CPUUtilization", group)
    queries = stalled_queries(found["stun-infra-test-bindings-stalled"])
    for qid, metric in (("requests", metrics.BINDING_REQUESTS), ("successes", metrics.BINDING_SUCCESSES)):
        m = queries[qid]["metric"]
        assert (m["namespace"], m["metricName"], m["stat"]) == (NAMESPACE, metric, "Sum")
        assert not m.get("dimensions")  # the fleet series, as in static mode
    assert "requests" in queries["stalled"]["expression"] and queries["stalled"]["returnData"] is True
    (subscription,) = autoscale.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.inputs["protocol"] == "email" and subscription.inputs["endpoint"] == "oncall@example.com"


def test_static_alarms_and_their_dimensions(static):
    found = alarms(static)
    ids = static.outputs["instance_ids"]
    assert set(found) == {f"stun-infra-test-{k}-{i}" for k in ("status-check", "cpu-high") for i in range(3)} | {
        "stun-infra-test-bindings-stalled"}
    for i, instance in enumerate(ids):
        check = found[f"stun-infra-test-status-check-{i}"]
        assert (check["metricName"], check["dimensions"]) == ("StatusCheckFailed", {"InstanceId": instance})
        assert found[f"stun-infra-test-cpu-high-{i}"]["dimensions"] == {"InstanceId": instance}
    queries = stalled_queries(found["stun-infra-test-bindings-stalled"])
    for qid in ("requests", "successes"):
        assert not queries[qid]["metric"].get("dimensions")  # the fleet series the reporter publishes
        assert queries[qid]["metric"]["namespace"] == NAMESPACE
    assert not static.of_type("aws:sns/topicSubscription:TopicSubscription")  # no email configured


def settings(**raw):
    return load_settings(raw, stack="test", region=REGION)


@pytest.mark.parametrize("autoscale_mode", [False, True], ids=["static", "autoscale"])
def test_agent_config_is_schema_valid_and_leaves_the_counters_to_the_reporter(autoscale_mode):
    """The agent collects memory and disk per instance and ships coturn's log; the counter
    metrics do not go through it (no StatsD input, no aggregation rollups)."""
    config = json.loads(agent_config(settings(**({"mode": "autoscale"} if autoscale_mode else {}))))
    jsonschema.Draft4Validator(json.loads(AGENT_SCHEMA.read_text())).validate(config)
    m = config["metrics"]
    assert m["namespace"] == NAMESPACE
    assert set(m["metrics_collected"]) == {"mem", "disk"}
    assert "aggregation_dimensions" not in m
    assert m["append_dimensions"]["InstanceId"] == "${aws:InstanceId}"
    assert ("AutoScalingGroupName" in m["append_dimensions"]) == autoscale_mode
    assert "statsd" not in json.dumps(config) and "8125" not in json.dumps(config)


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_every_counter_series_read_is_one_the_reporter_publishes(mode, static, autoscale):
    """Dashboard rows and alarm queries on the kernel counters use exactly a dimension set
    the reporter publishes: the fleet one (none), whatever the mode."""
    run = {"static": static, "autoscale": autoscale}[mode]
    read = [(metric, sorted(dims)) for ns, metric, dims in rows(widget(dashboard(run), "STUN bindings"))
            + rows(widget(dashboard(run), "TURN sessions")) if metric in metrics.COUNTER_METRICS]
    for query in stalled_queries(alarms(run)["stun-infra-test-bindings-stalled"]).values():
        if "metric" in query:
            read.append((query["metric"]["metricName"], sorted(query["metric"].get("dimensions") or {})))
    assert {metric for metric, _ in read} == set(metrics.COUNTER_METRICS)
    assert all(dims in metrics.counter_dimension_sets() and dims == metrics.fleet_dimensions()
               for _, dims in read), read
