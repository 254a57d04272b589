"""Dashboard, log group, metric filters, alarms and the agent config, under the mock engine,
in both modes: every counter metric is read with dimensions the reporter publishes it with."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from stun_infra.instance import metrics
from stun_infra.cloud.components.fleet import GROUP_METRICS
from stun_infra.cloud.components.monitoring import (DISK_USED_HIGH_PERCENT, SESSIONS_NEAR_QUOTA_PERCENT, WARM_UP_MINUTES,
                                                    sessions_load_expression)
from stun_infra.settings import load_settings
from stun_infra.instance.cloudwatch_agent import agent_config
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


def test_the_region_is_a_json_value_in_the_dashboard_never_spliced_text():
    from stun_infra.cloud.components.monitoring import dashboard_body

    hostile = 'eu-west-3", "injected": "1'
    body = json.loads(dashboard_body(hostile, NAMESPACE, None, ["i-1"]))
    assert {w["properties"]["region"] for w in body["widgets"]} == {hostile}
    assert all("injected" not in w["properties"] for w in body["widgets"])


def test_static_dashboard_reads_fleet_bindings_without_dimensions_and_each_instance(static):
    body = dashboard(static)
    ids = static.outputs["instance_ids"]
    assert len(ids) == 3
    assert rows(widget(body, "STUN bindings")) == [(NAMESPACE, m, {}) for m in (
        metrics.BINDING_SUCCESSES, metrics.BINDING_ERRORS, metrics.BINDING_REQUESTS, metrics.BINDING_REQUESTS_IPV6)]
    assert metrics.fleet_dimensions() == [] and [] in metrics.counter_dimension_sets()  # the reporter's fleet datum
    sessions = widget(body, "TURN sessions:")
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
        metrics.BINDING_SUCCESSES, metrics.BINDING_ERRORS, metrics.BINDING_REQUESTS, metrics.BINDING_REQUESTS_IPV6)]
    assert rows(widget(body, "TURN sessions:")) == [(NAMESPACE, metrics.UDP_ALLOCATIONS, {}),
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
    group = run.named("aws:cloudwatch/logGroup:LogGroup", "stun-infra-test-coturn").inputs
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
    assert rows(widget(dashboard(run), "TURN sessions:")) == [(NAMESPACE, metrics.UDP_ALLOCATIONS, {})] + [
        (NAMESPACE, m.name, {}) for m in metrics.LOG_METRICS]


def test_log_patterns_are_single_quoted_terms():
    """The one filter-pattern form moto evaluates like CloudWatch (see FIELD-NOTES)."""
    for m in metrics.LOG_METRICS:
        assert re.fullmatch(r'"[^"]+"', m.pattern), m.pattern


def alarms(run) -> dict[str, dict]:
    return {a.name: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}


def stalled_queries(alarm: dict) -> dict[str, dict]:
    return {q["id"]: q for q in alarm["metricQueries"]}


# The alarm's metric math, written out here (not imported): what the tests below evaluate.
STALLED_EXPRESSION = "IF(FILL(requests, 0) > 0 AND FILL(successes, 0) == 0, 1, 0)"


def check_stalled(alarm: dict, dimensions: dict[str, str]) -> None:
    """A bindings-stalled alarm: Sum per minute of requests and successes in the stack's
    namespace with exactly `dimensions` (none: the fleet series), the stalled expression
    returned, 3 of 3 minutes at 1 to alarm, no data is not a stall."""
    queries = stalled_queries(alarm)
    assert set(queries) == {"requests", "successes", "stalled"}
    for qid, metric in (("requests", metrics.BINDING_REQUESTS), ("successes", metrics.BINDING_SUCCESSES)):
        q = queries[qid]
        assert q["returnData"] is False and "expression" not in q
        m = q["metric"]
        assert (m["namespace"], m["metricName"], m["stat"], m["period"]) == (NAMESPACE, metric, "Sum", 60), m
        assert (m.get("dimensions") or {}) == dimensions, m
        assert sorted(dimensions) in metrics.counter_dimension_sets()  # a series the reporter publishes
    stalled = queries["stalled"]
    assert stalled["returnData"] is True and "metric" not in stalled
    assert stalled["expression"] == STALLED_EXPRESSION
    assert (alarm["comparisonOperator"], alarm["threshold"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"],
            alarm["treatMissingData"]) == ("GreaterThanOrEqualToThreshold", 1, 3, 3, "notBreaching")
    assert "metricName" not in alarm and "namespace" not in alarm and "dimensions" not in alarm


def test_autoscale_alarms_and_their_dimensions(autoscale):
    found = alarms(autoscale)
    group = {"AutoScalingGroupName": autoscale.outputs["asg_name"]}
    assert set(found) == {"stun-infra-test-in-service-low", "stun-infra-test-cpu-high",
                          "stun-infra-test-bindings-stalled", "stun-infra-test-sessions-near-quota",
                          "stun-infra-test-not-reporting", "stun-infra-test-disk-high", "stun-infra-test-boot-failed",
                          "stun-infra-test-certificate-expiring"}
    low = found["stun-infra-test-in-service-low"]
    assert (low["namespace"], low["metricName"], low["dimensions"], low["threshold"]) == (
        "AWS/AutoScaling", "GroupInServiceInstances", group, 2)
    assert low["comparisonOperator"] == "LessThanThreshold"
    cpu = found["stun-infra-test-cpu-high"]
    assert (cpu["namespace"], cpu["metricName"], cpu["dimensions"]) == ("AWS/EC2", "CPUUtilization", group)
    check_stalled(found["stun-infra-test-bindings-stalled"], {})  # the fleet series, as in static mode
    (subscription,) = autoscale.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.inputs["protocol"] == "email" and subscription.inputs["endpoint"] == "oncall@example.com"


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_no_alarm_fires_on_a_new_instance_or_group_for_lack_of_data(mode, static, autoscale):
    """A new instance or group has no datapoint for minutes: each create and each roll would alarm."""
    found = alarms({"static": static, "autoscale": autoscale}[mode])
    assert found and {a["treatMissingData"] for a in found.values()} <= {"missing", "notBreaching"}


def test_static_alarms_and_their_dimensions(static):
    found = alarms(static)
    ids = static.outputs["instance_ids"]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert set(found) == {f"stun-infra-test-{k}-{i}" for k in ("status-check", "cpu-high", "bindings-stalled",
                                                               "not-reporting") for i in range(3)} | {
        "stun-infra-test-bindings-stalled", "stun-infra-test-sessions-near-quota", "stun-infra-test-disk-high",
        "stun-infra-test-boot-failed", "stun-infra-test-certificate-expiring"}
    for i, instance in enumerate(ids):
        check = found[f"stun-infra-test-status-check-{i}"]
        assert (check["metricName"], check["dimensions"]) == ("StatusCheckFailed", {"InstanceId": instance})
        assert found[f"stun-infra-test-cpu-high-{i}"]["dimensions"] == {"InstanceId": instance}
        # this instance's own series (the reporter's InstanceId datum), nothing else
        check_stalled(found[f"stun-infra-test-bindings-stalled-{i}"], {metrics.INSTANCE_DIMENSION: instance})
        assert str(i) in found[f"stun-infra-test-bindings-stalled-{i}"]["alarmDescription"]
    check_stalled(found["stun-infra-test-bindings-stalled"], {})  # the fleet series the reporter publishes
    assert not static.of_type("aws:sns/topicSubscription:TopicSubscription")  # no email configured


def near_quota_queries(run) -> dict[str, dict]:
    alarm = alarms(run)["stun-infra-test-sessions-near-quota"]
    assert (alarm["comparisonOperator"], alarm["threshold"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"],
            alarm["treatMissingData"]) == ("GreaterThanOrEqualToThreshold", SESSIONS_NEAR_QUOTA_PERCENT, 3, 3,
                                           "notBreaching")
    assert "metricName" not in alarm and [q["returnData"] for q in alarm["metricQueries"]][-1] is True
    return {q["id"]: q for q in alarm["metricQueries"]}


FLEET_SESSIONS = {"namespace": NAMESPACE, "metricName": metrics.LIVE_SESSIONS, "period": 60, "stat": "Sum"}


def test_static_sessions_alarm_is_the_fleet_against_total_quota_times_instances(static):
    queries = near_quota_queries(static)
    assert set(queries) == {"sessions", "load"}
    assert queries["sessions"]["metric"] == FLEET_SESSIONS  # no dimension: the fleet series
    assert queries["load"]["expression"] == "100 * FILL(sessions, 0) / 3000"  # 3 instances x totalQuota 1000


def test_autoscale_sessions_alarm_divides_by_the_groups_in_service_instances(autoscale):
    queries = near_quota_queries(autoscale)
    assert set(queries) == {"sessions", "inservice", "load"}
    assert queries["sessions"]["metric"] == FLEET_SESSIONS
    assert queries["inservice"]["metric"] == {
        "namespace": "AWS/AutoScaling", "metricName": "GroupInServiceInstances", "period": 60, "stat": "Minimum",
        "dimensions": {"AutoScalingGroupName": autoscale.outputs["asg_name"]}}
    assert queries["load"]["expression"] == sessions_load_expression(1000, None) == \
        "IF(inservice > 0, 100 * FILL(sessions, 0) / (inservice * 1000), 0)"


@pytest.mark.parametrize("config", [{"turn": False}, {"totalQuota": 0}], ids=["stun-only", "unlimited-quota"])
def test_no_sessions_alarm_without_turn_or_quota(config):
    run = program(mode="static", instanceCount=1, **config)
    assert "stun-infra-test-sessions-near-quota" not in alarms(run)


def test_dashboard_shows_the_fleets_live_sessions_now(static, autoscale):
    for run in (static, autoscale):
        now = widget(dashboard(run), "TURN sessions now")
        assert rows(now) == [(NAMESPACE, metrics.LIVE_SESSIONS, {})] and now["stat"] == "Sum"


def test_stun_only_dashboard_has_no_sessions_now_widget():
    body = dashboard(program(mode="static", instanceCount=1, turn=False))
    assert not [w for w in body["widgets"] if w["properties"]["title"].startswith("TURN sessions now")]


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
    the reporter publishes: the fleet one (none), whatever the mode, and in static mode the
    per-instance stalled alarms the InstanceId one."""
    run = {"static": static, "autoscale": autoscale}[mode]
    read = [(metric, sorted(dims)) for ns, metric, dims in rows(widget(dashboard(run), "STUN bindings"))
            + rows(widget(dashboard(run), "TURN sessions:")) if metric in metrics.COUNTER_METRICS]
    for name, alarm in alarms(run).items():
        if "bindings-stalled" in name:
            for query in stalled_queries(alarm).values():
                if "metric" in query:
                    read.append((query["metric"]["metricName"], sorted(query["metric"].get("dimensions") or {})))
    assert {metric for metric, _ in read} == set(metrics.COUNTER_METRICS)
    assert all(dims in metrics.counter_dimension_sets() for _, dims in read), read
    # the instance series only in static mode's per-instance alarms; the rest read the fleet's
    assert sorted(dims for _, dims in read if dims) == (
        [[metrics.INSTANCE_DIMENSION]] * 2 * len(run.outputs["instance_ids"]) if mode == "static" else [])


# -- the stalled expression, evaluated ------------------------------------------------
# A tiny CloudWatch metric-math evaluator for the forms the alarm uses: IF, FILL, numbers,
# query ids, + - * / (a division by zero: no value), comparisons (1 or 0), AND/OR (below
# comparisons), parentheses. Each series is a
# list of per-minute values, None where no datum was published; FILL replaces those.

def _tokens(text: str) -> list[str]:
    tokens = re.findall(r"\s*(>=|<=|==|!=|[<>(),*/+-]|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?)", text)
    assert "".join(tokens) == re.sub(r"\s+", "", text), f"cannot tokenize {text!r}"
    return tokens


def evaluate(expression: str, series: dict[str, list[float | None]]) -> list[float | None]:
    tokens, n = _tokens(expression), len(next(iter(series.values())))
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        token = tokens[pos]
        assert expected is None or token == expected, (expected, token, expression)
        pos += 1
        return token

    def pointwise(f, *args):
        return [None if any(a[t] is None for a in args) else f(*(a[t] for a in args)) for t in range(n)]

    def primary():
        token = take()
        if token == "(":
            value = logical()
            take(")")
            return value
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            return [float(token)] * n
        if pos < len(tokens) and tokens[pos] == "(":
            take("(")
            args = [logical()]
            while tokens[pos] == ",":
                take(",")
                args.append(logical())
            take(")")
            if token == "FILL":
                values, fill = args
                return [fill[t] if v is None else v for t, v in enumerate(values)]
            if token == "IF":
                cond, then, other = args
                return [None if cond[t] is None else (then[t] if cond[t] else other[t]) for t in range(n)]
            raise AssertionError(f"function {token} is not modelled")
        return list(series[token])  # a query id

    ops = {">": float.__gt__, "<": float.__lt__, ">=": float.__ge__, "<=": float.__le__,
           "==": float.__eq__, "!=": float.__ne__}

    arithmetic_ops = {"*": lambda a, b: a * b, "/": lambda a, b: a / b if b else None,
                      "+": lambda a, b: a + b, "-": lambda a, b: a - b}

    def binary(operand, symbols):
        def parse():
            value = operand()
            while pos < len(tokens) and tokens[pos] in symbols:
                f = arithmetic_ops[take()]
                value = pointwise(f, value, operand())
            return value
        return parse

    arithmetic = binary(binary(primary, ("*", "/")), ("+", "-"))

    def comparison():
        left = arithmetic()
        if pos < len(tokens) and tokens[pos] in ops:
            op = ops[take()]
            right = arithmetic()
            return pointwise(lambda a, b: float(op(float(a), float(b))), left, right)
        return left

    def logical():
        value = comparison()
        while pos < len(tokens) and tokens[pos] in ("AND", "OR"):
            both = take() == "AND"
            right = comparison()
            value = pointwise((lambda a, b: float(bool(a) and bool(b))) if both else
                              (lambda a, b: float(bool(a) or bool(b))), value, right)
        return value

    out = logical()
    assert pos == len(tokens), f"unparsed: {tokens[pos:]}"
    return out


def alarms_after(alarm: dict, values: list[float | None]) -> bool:
    """ALARM on the last evaluation: datapointsToAlarm of the last evaluationPeriods
    breach (the comparison is >= threshold; a missing value is notBreaching)."""
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["treatMissingData"] == "notBreaching"
    window = values[-int(alarm["evaluationPeriods"]):]
    return sum(v is not None and v >= alarm["threshold"] for v in window) >= alarm["datapointsToAlarm"]


def stalled_series(alarm: dict, requests, successes) -> list[float | None]:
    queries = stalled_queries(alarm)
    return evaluate(queries["stalled"]["expression"], {"requests": requests, "successes": successes})


def test_stalled_expression_is_one_exactly_when_requests_arrive_without_successes(static):
    alarm = alarms(static)["stun-infra-test-bindings-stalled"]
    requests = [0.0, 5.0, 5.0, None, 7.0, None, 3.0]
    successes = [0.0, 5.0, 0.0, 4.0, None, None, 1.0]
    # no traffic / all answered / stalled / answers without a request datum / requests with
    # no success datum (stalled) / nothing published / some answered
    assert stalled_series(alarm, requests, successes) == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    assert evaluate("FILL(requests, 0)", {"requests": [None, 2.0]}) == [0.0, 2.0]  # the evaluator itself
    assert evaluate("1 > 0 AND 0 == 1", {"x": [None]}) == [0.0]


def test_one_stalled_instance_alarms_its_own_alarm_not_the_fleets(static):
    """Three instances, one of which stopped answering for 3 minutes: the fleet still shows
    successes (its alarm stays OK), that instance's alarm fires, the others' do not."""
    found, ids = alarms(static), static.outputs["instance_ids"]
    per_instance = {ids[0]: ([10.0] * 3, [10.0] * 3), ids[1]: ([8.0] * 3, [0.0] * 3), ids[2]: ([6.0] * 3, [6.0] * 3)}
    fleet = [[sum(col) for col in zip(*(series[k] for series in per_instance.values()))] for k in (0, 1)]
    assert not alarms_after(found["stun-infra-test-bindings-stalled"],
                            stalled_series(found["stun-infra-test-bindings-stalled"], *fleet))
    for i, instance in enumerate(ids):
        alarm = found[f"stun-infra-test-bindings-stalled-{i}"]
        assert stalled_queries(alarm)["requests"]["metric"]["dimensions"] == {"InstanceId": instance}
        assert alarms_after(alarm, stalled_series(alarm, *per_instance[instance])) is (i == 1), i
    # Two stalled minutes of three are not enough; the whole fleet stalled alarms the fleet's.
    alarm = found["stun-infra-test-bindings-stalled-1"]
    assert not alarms_after(alarm, stalled_series(alarm, [8.0] * 3, [0.0, 0.0, 8.0]))
    fleet_alarm = found["stun-infra-test-bindings-stalled"]
    assert alarms_after(fleet_alarm, stalled_series(fleet_alarm, [24.0] * 3, [None] * 3))


def test_dashboard_json_is_built_whole_so_no_value_breaks_out_of_its_string():
    from stun_infra.cloud.components.monitoring import dashboard_body
    region = 'eu-west-3", "x": "y'
    body = json.loads(dashboard_body(region, NAMESPACE, None, ["i-1"]))
    assert {w["properties"]["region"] for w in body["widgets"]} == {region}


# -- metrics that stop, and the disk ----------------------------------------------------

def not_reporting_series(alarm: dict, **series: list[float | None]) -> list[float | None]:
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert set(queries) == {*series, "missing"} and queries["missing"]["returnData"] is True
    assert queries["reporting"]["metric"]["metricName"] == metrics.HEARTBEAT
    assert queries["reporting"]["metric"]["stat"] == "Sum"
    return evaluate(queries["missing"]["expression"], series)


def test_an_in_service_instance_whose_reporter_stops_alarms_after_three_minutes(autoscale):
    alarm = alarms(autoscale)["stun-infra-test-not-reporting"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["inservice"]["metric"]["dimensions"] == {"AutoScalingGroupName": autoscale.outputs["asg_name"]}
    assert "dimensions" not in queries["reporting"]["metric"]  # the fleet series: one datum per reporting instance
    inservice = [3.0] * 6
    assert alarms_after(alarm, not_reporting_series(alarm, inservice=inservice, reporting=[3.0, 3.0, 3.0, 2.0, 2.0, 2.0]))
    assert not alarms_after(alarm, not_reporting_series(alarm, inservice=inservice, reporting=[3.0] * 4 + [2.0] * 2))
    # every reporter stopped: no datum at all still counts as none reporting
    assert alarms_after(alarm, not_reporting_series(alarm, inservice=inservice, reporting=[None] * 6))
    # scale-out: a new instance in service reports within its first minute or two
    assert not alarms_after(alarm, not_reporting_series(alarm, inservice=[3.0, 4.0, 4.0, 4.0],
                                                        reporting=[3.0, 3.0, 3.0, 4.0]))
    # a draining instance leaves service before its reporter stops
    assert not alarms_after(alarm, not_reporting_series(alarm, inservice=[2.0] * 4, reporting=[3.0] * 4))


def test_a_static_instance_that_runs_but_never_reports_alarms_after_its_warm_up(static):
    """A boot that stopped before its metrics stage leaves a running instance, serving nothing,
    with no metric of its own: EC2's CPU series says it runs, the missing heartbeat alarms."""
    ids = static.outputs["instance_ids"]
    for i, instance in enumerate(ids):
        alarm = alarms(static)[f"stun-infra-test-not-reporting-{i}"]
        queries = {q["id"]: q for q in alarm["metricQueries"]}
        assert queries["running"]["metric"] == {"namespace": "AWS/EC2", "metricName": "CPUUtilization",
                                                "dimensions": {"InstanceId": instance}, "period": 60,
                                                "stat": "Average"}
        assert queries["reporting"]["metric"]["dimensions"] == {metrics.INSTANCE_DIMENSION: instance}
    alarm = alarms(static)["stun-infra-test-not-reporting-0"]
    assert alarm["evaluationPeriods"] == WARM_UP_MINUTES == 10
    running = [2.0] * 12
    assert alarms_after(alarm, not_reporting_series(alarm, running=running, reporting=[None] * 12))
    booted = [None] * 4 + [1.0] * 8  # a boot that reports within its warm-up
    assert not alarms_after(alarm, not_reporting_series(alarm, running=running, reporting=booted))
    stopped = [None] * 12  # a stopped instance has no CPU datum: nothing to say
    assert not alarms_after(alarm, not_reporting_series(alarm, running=stopped, reporting=[None] * 12))
    later = [1.0] * 2 + [None] * 10  # reported, then stopped reporting while running
    assert alarms_after(alarm, not_reporting_series(alarm, running=running, reporting=later))


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_the_fullest_root_disk_of_the_fleet_alarms_above_80_percent(mode, static, autoscale):
    alarm = alarms({"static": static, "autoscale": autoscale}[mode])["stun-infra-test-disk-high"]
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"], alarm["comparisonOperator"],
            alarm["threshold"], alarm["evaluationPeriods"]) == (
        NAMESPACE, metrics.ROOT_DISK_USED, "Maximum", "GreaterThanOrEqualToThreshold", DISK_USED_HIGH_PERCENT, 5)
    assert "dimensions" not in alarm  # the fleet series every reporter also publishes (counter_dimension_sets)
    assert [] in metrics.counter_dimension_sets()


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_a_configure_that_gave_up_alarms_at_once(mode, static, autoscale):
    alarm = alarms({"static": static, "autoscale": autoscale}[mode])["stun-infra-test-boot-failed"]
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"], alarm["threshold"],
            alarm["evaluationPeriods"], alarm["treatMissingData"]) == (
        NAMESPACE, metrics.BOOT_FAILED, "Sum", 1, 1, "notBreaching")
    assert "dimensions" not in alarm  # the fleet series stun-boot-failed also publishes


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_the_certificate_coturn_serves_alarms_two_weeks_before_it_expires(mode, static, autoscale):
    alarm = alarms({"static": static, "autoscale": autoscale}[mode])["stun-infra-test-certificate-expiring"]
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"], alarm["comparisonOperator"],
            alarm["threshold"]) == (NAMESPACE, metrics.CERTIFICATE_DAYS_LEFT, "Minimum", "LessThanThreshold", 14)
    assert "dimensions" not in alarm  # the fleet series: its Minimum is the soonest to expire


def test_no_certificate_alarm_where_tls_ends_at_the_load_balancer():
    run = program(mode="autoscale", dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
    assert "stun-infra-test-certificate-expiring" not in alarms(run)
