"""Monitoring: the dashboard and alarms, built from the fleet's own outputs.

Binding counts and UDP allocations come from kernel counters on each instance (0 log
bytes per message); other session events from coturn's log through ServerLogs' metric filters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_aws as aws

from stun_infra.instance import metrics
from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT
from stun_infra.cloud.components.fleet import GROUP_METRICS

PERIOD = 60
# A new instance or group has no datapoint for its first minutes: "missing" leaves such an
# alarm in INSUFFICIENT_DATA (no notification) instead of ALARM on every create and roll.
NO_DATA_YET = "missing"
# 1 in a minute when requests arrived (a missing datum counts as none) and nothing succeeded.
STALLED_EXPRESSION = "IF(FILL(requests, 0) > 0 AND FILL(successes, 0) == 0, 1, 0)"
SESSIONS_NEAR_QUOTA_PERCENT = 80  # of totalQuota x instances: time to add instances before coturn says 486
# Instances in service (or running) that did not report in a minute: each reporter run sends a
# heartbeat of 1 (metrics.HEARTBEAT), so the fleet's Sum is the instances that reported.
# Autoscale: an instance is in service only once its configure ran (launch hook), and its first
# report follows within a minute; static: EC2's CPU series (detailed monitoring, every minute)
# says the instance runs, and a boot gets WARM_UP_MINUTES to report before a missing heartbeat
# alarms (a boot that failed before its metrics stage never reports).
GROUP_NOT_REPORTING = "IF(inservice > 0, inservice - FILL(reporting, 0), 0)"
INSTANCE_NOT_REPORTING = "IF(running >= 0, 1 - FILL(reporting, 0), 0)"
GROUP_REPORTING_MINUTES = 3
WARM_UP_MINUTES = 10
DISK_USED_HIGH_PERCENT = 80  # of the fullest instance's root file system, for 5 minutes
CERTIFICATE_DAYS_LEFT_LOW = 14  # the certificate an instance serves (a renewal should have come by then)


def sessions_load_expression(total_quota: int, instances: int | None) -> str:
    """Live sessions as a percent of what the fleet admits (coturn's total-quota per instance):
    `sessions` is the fleet series (Sum per minute), `inservice` the group's in-service count
    (autoscale; `instances` None) or a fixed count (static)."""
    if instances is None:
        return f"IF(inservice > 0, 100 * FILL(sessions, 0) / (inservice * {total_quota}), 0)"
    return f"100 * FILL(sessions, 0) / {instances * total_quota}"


@dataclass(frozen=True)
class MonitoringArgs:
    region: str
    metric_namespace: str
    asg_name: pulumi.Input[str] | None       # autoscale mode
    instance_ids: Sequence[pulumi.Input[str]]  # static mode
    min_size: int
    session_logging: bool
    turn: bool            # live sessions are published, shown and alarmed on only with TURN on
    total_quota: int      # coturn's total-quota per instance; 0 = unlimited (no near-quota alarm)
    cpu_high_percent: int
    alarm_email: str
    tags: dict[str, str]
    # Several regions: one dashboard, the home region's, with every region's widgets (each
    # widget names its region); the other regions' Monitoring makes none.
    panels: Sequence["RegionPanel"] = ()
    dashboard: bool = True
    served_certificate: bool = False  # coturn serves TLS itself: the days left on its certificate are watched


@dataclass(frozen=True)
class RegionPanel:
    """One region's fleet as its dashboard widgets read it."""

    region: str
    asg_name: pulumi.Input[str] | None
    instance_ids: Sequence[pulumi.Input[str]]


def _widget(title: str, metric_rows: list, y: int, x: int, stat: str = "Sum") -> dict:
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "stat": stat, "period": PERIOD,
                           "view": "timeSeries", "stacked": False, "metrics": metric_rows}}


def dashboard_body(region: str, namespace: str, asg_name: str | None, instance_ids: list[str],
                   session_logging: bool = False, turn: bool = True) -> str:
    """CloudWatch dashboard JSON; every name comes from the arguments."""
    return json.dumps({"widgets": region_widgets(region, namespace, asg_name, instance_ids, session_logging, turn)})


GRID_WIDTH = 24  # a CloudWatch dashboard's grid
MAX_COLUMNS = 4  # regions side by side before the next row of regions
WIDGET_HEIGHT = 6  # each widget's, as _widget makes them


def regions_dashboard_body(namespace: str, panels: Sequence[tuple[str, str | None, list[str]]],
                           session_logging: bool = False, turn: bool = True) -> str:
    """One dashboard for several regions: each region a column of its own widgets (titles
    carry the region), side by side, up to MAX_COLUMNS regions a row."""
    columns = min(len(panels), MAX_COLUMNS)
    width = GRID_WIDTH // columns
    widgets: list[dict] = []
    for i, (region, asg_name, instance_ids) in enumerate(panels):
        own = region_widgets(region, namespace, asg_name, instance_ids, session_logging, turn)
        top = (i // columns) * len(own) * WIDGET_HEIGHT
        for j, widget in enumerate(own):
            widget.update(x=(i % columns) * width, y=top + j * WIDGET_HEIGHT, width=width)
            widget["properties"]["title"] = f"{region}: {widget['properties']['title']}"
        widgets += own
    return json.dumps({"widgets": widgets})


def region_widgets(region: str, namespace: str, asg_name: str | None, instance_ids: list[str],
                   session_logging: bool = False, turn: bool = True) -> list[dict]:
    """One region's widgets, each reading that region."""
    # Kernel counters: the fleet series, which every instance publishes with no dimension
    # (metrics.fleet_dimensions; the namespace is this stack's alone), in both modes.
    bindings = [[namespace, m] for m in (metrics.BINDING_SUCCESSES, metrics.BINDING_ERRORS,
                                         metrics.BINDING_REQUESTS, metrics.BINDING_REQUESTS_IPV6)]
    # UDP allocations: kernel counter, always (fleet series, like the bindings); the rest: log metrics
    sessions = [[namespace, metrics.UDP_ALLOCATIONS],
                *([namespace, m.name] for m in metrics.log_metrics(session_logging))]
    if asg_name:
        capacity = [["AWS/AutoScaling", m, "AutoScalingGroupName", asg_name] for m in GROUP_METRICS]
        cpu = [["AWS/EC2", "CPUUtilization", "AutoScalingGroupName", asg_name]]
        packets = [["AWS/EC2", m, "AutoScalingGroupName", asg_name] for m in ("NetworkPacketsIn", "NetworkPacketsOut")]
    else:
        capacity = [["AWS/EC2", "StatusCheckFailed", "InstanceId", i] for i in instance_ids]
        cpu = [["AWS/EC2", "CPUUtilization", "InstanceId", i] for i in instance_ids]
        packets = [["AWS/EC2", m, "InstanceId", i] for i in instance_ids
                   for m in ("NetworkPacketsIn", "NetworkPacketsOut")]
    widgets = [
        _widget("STUN bindings per minute (kernel counters; requests over IPv6 among them)", bindings, 0, 0),
        _widget("TURN sessions: " + ", ".join(row[1] for row in sessions), sessions, 0, 12),
        _widget("Group capacity" if asg_name else "Status check failures", capacity, 6, 0,
                "Maximum"),
        _widget("CPU utilization (%)", cpu, 6, 12, "Average"),
        _widget("Network packets in/out", packets, 12, 0),
    ]
    if turn:  # the fleet's live allocations (each instance reports once a minute: Sum is the fleet)
        widgets.append(_widget("TURN sessions now (live allocations, fleet)",
                               [[namespace, metrics.LIVE_SESSIONS]], 12, 12))
    for widget in widgets:
        widget["properties"]["region"] = region
    return widgets


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:monitoring:Monitoring", name, None, opts)
        self.dashboard_url: pulumi.Output[str] | None = None
        if args.dashboard:
            self.dashboard = aws.cloudwatch.Dashboard(
                f"{name}-dashboard", dashboard_name=name, dashboard_body=self._body(args), opts=child_opts(self))
            self.dashboard_url = self.dashboard.dashboard_name.apply(lambda n: dashboard_url(args.region, n))

        self.topic = aws.sns.Topic(f"{name}-alarms", tags=tagged(args.tags, f"{name}-alarms"),
                                   opts=child_opts(self))
        if args.alarm_email:
            aws.sns.TopicSubscription(f"{name}-alarms-email", topic=self.topic.arn, protocol="email",
                                      endpoint=args.alarm_email, opts=child_opts(self))
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []
        actions = [self.topic.arn]
        if args.asg_name is not None:
            group = {"AutoScalingGroupName": args.asg_name}
            self._alarm(name, "in-service-low", args, actions,
                        alarm_description=f"Fewer than {args.min_size} instances in service",
                        namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances", dimensions=group,
                        statistic="Minimum", comparison_operator="LessThanThreshold",
                        threshold=args.min_size, evaluation_periods=3, datapoints_to_alarm=3,
                        treat_missing_data=NO_DATA_YET)
            self._cpu_high(name, "cpu-high", args, actions, "Average CPU", group)
            self._not_reporting(
                name, "not-reporting", args, actions,
                f"In-service instances sent no metrics for {GROUP_REPORTING_MINUTES} minutes",
                self._query("inservice", "AWS/AutoScaling", "GroupInServiceInstances", "Minimum", group),
                GROUP_NOT_REPORTING, GROUP_REPORTING_MINUTES)
        for i, instance_id in enumerate(args.instance_ids):
            instance = {"InstanceId": instance_id}
            self._alarm(name, f"status-check-{i}", args, actions,
                        alarm_description=f"Instance {i} failed its status checks",
                        namespace="AWS/EC2", metric_name="StatusCheckFailed", dimensions=instance,
                        statistic="Maximum", comparison_operator="GreaterThanOrEqualToThreshold",
                        threshold=1, evaluation_periods=2, datapoints_to_alarm=2,
                        treat_missing_data=NO_DATA_YET)
            self._cpu_high(name, f"cpu-high-{i}", args, actions, f"Instance {i} CPU", instance)
            self._not_reporting(
                name, f"not-reporting-{i}", args, actions,
                f"Instance {i} runs but sent no metrics for {WARM_UP_MINUTES} minutes (a boot that stopped?)",
                self._query("running", "AWS/EC2", "CPUUtilization", "Average", instance),
                INSTANCE_NOT_REPORTING, WARM_UP_MINUTES, {metrics.INSTANCE_DIMENSION: instance_id})
            # One instance can stop answering while the others keep the fleet series healthy.
            self._bindings_stalled(name, f"bindings-stalled-{i}", args, actions,
                                   f"Instance {i}: binding requests arrive but no binding succeeds",
                                   {metrics.INSTANCE_DIMENSION: instance_id})
        self._bindings_stalled(name, "bindings-stalled", args, actions,
                               "Binding requests arrive but no binding succeeds")
        self._instance_health(name, args, actions)
        if args.turn and args.total_quota:
            self._sessions_near_quota(name, args, actions)
        self.register_outputs({"dashboard_url": self.dashboard_url, "alarm_topic_arn": self.topic.arn})

    @staticmethod
    def _body(args: MonitoringArgs) -> pulumi.Output[str]:
        if not args.panels:
            return pulumi.Output.all(args.asg_name, list(args.instance_ids)).apply(
                lambda a: dashboard_body(args.region, args.metric_namespace, a[0], a[1], args.session_logging,
                                         args.turn))
        fleets = [pulumi.Output.all(p.asg_name, list(p.instance_ids)) for p in args.panels]
        return pulumi.Output.all(*fleets).apply(lambda found: regions_dashboard_body(
            args.metric_namespace, [(p.region, f[0], f[1]) for p, f in zip(args.panels, found)],
            args.session_logging, args.turn))

    def _alarm(self, name: str, key: str, args: MonitoringArgs, actions: list, **kwargs) -> None:
        self.alarms.append(aws.cloudwatch.MetricAlarm(
            f"{name}-{key}", period=PERIOD, alarm_actions=actions, ok_actions=actions,
            tags=tagged(args.tags, f"{name}-{key}"), opts=child_opts(self), **kwargs))

    def _cpu_high(self, name: str, key: str, args: MonitoringArgs, actions: list, what: str,
                  dimensions: dict[str, pulumi.Input[str]]) -> None:
        self._alarm(name, key, args, actions,
                    alarm_description=f"{what} above {args.cpu_high_percent}% for 5 minutes",
                    namespace="AWS/EC2", metric_name="CPUUtilization", dimensions=dimensions,
                    statistic="Average", comparison_operator="GreaterThanThreshold",
                    threshold=args.cpu_high_percent, evaluation_periods=5, datapoints_to_alarm=5,
                    treat_missing_data="missing")

    def _sessions_near_quota(self, name: str, args: MonitoringArgs, actions: list) -> None:
        """The fleet's live sessions near what its instances admit (totalQuota each): beyond it
        coturn refuses allocations (486). Autoscale: over the group's in-service instances."""
        queries = [self._query("sessions", args.metric_namespace, metrics.LIVE_SESSIONS, "Sum")]
        instances = None if args.asg_name is not None else len(args.instance_ids)
        if instances is None:
            queries.append(self._query("inservice", "AWS/AutoScaling", "GroupInServiceInstances", "Minimum",
                                       {"AutoScalingGroupName": args.asg_name}))
        queries.append(aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id="load", return_data=True, label="Live sessions, percent of totalQuota x instances",
            expression=sessions_load_expression(args.total_quota, instances)))
        self._math_alarm(name, "sessions-near-quota", args, actions,
                         (f"Live TURN sessions above {SESSIONS_NEAR_QUOTA_PERCENT}% of totalQuota "
                          f"({args.total_quota}) x instances for 3 minutes"),
                         queries, minutes=3, threshold=SESSIONS_NEAR_QUOTA_PERCENT)

    def _query(self, id_: str, namespace: pulumi.Input[str], metric: str, stat: str,
               dimensions: dict[str, pulumi.Input[str]] | None = None) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=id_, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=namespace, metric_name=metric, dimensions=dimensions, period=PERIOD, stat=stat))

    def _not_reporting(self, name: str, key: str, args: MonitoringArgs, actions: list, description: str,
                       reference: aws.cloudwatch.MetricAlarmMetricQueryArgs, expression: str,
                       minutes: int, dimensions: dict[str, pulumi.Input[str]] | None = None) -> None:
        """Metrics that stop say so: instances that should report and did not, for `minutes`."""
        self._math_alarm(name, key, args, actions, description, [
            reference, self._query("reporting", args.metric_namespace, metrics.HEARTBEAT, "Sum", dimensions),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(id="missing", return_data=True, label="Instances not reporting",
                                                      expression=expression)], minutes=minutes)

    def _math_alarm(self, name: str, key: str, args: MonitoringArgs, actions: list, description: str,
                    queries: list, minutes: int, threshold: float = 1) -> None:
        """An alarm on metric math: the last query's value at or above `threshold` for `minutes`
        minutes in a row; a minute without a value does not count (notBreaching)."""
        self.alarms.append(aws.cloudwatch.MetricAlarm(
            f"{name}-{key}", alarm_description=description,
            comparison_operator="GreaterThanOrEqualToThreshold", threshold=threshold,
            evaluation_periods=minutes, datapoints_to_alarm=minutes, treat_missing_data="notBreaching",
            metric_queries=queries, alarm_actions=actions, ok_actions=actions,
            tags=tagged(args.tags, f"{name}-{key}"), opts=child_opts(self)))

    def _instance_health(self, name: str, args: MonitoringArgs, actions: list) -> None:
        """What a weeks-old fleet runs into: a root disk filling, the served certificate
        running out, a configure that gave up (each the fleet series every instance feeds)."""
        self._alarm(name, "disk-high", args, actions,
                    alarm_description=(f"An instance's root file system above {DISK_USED_HIGH_PERCENT}% "
                                       "for 5 minutes (coturn's log, most likely)"),
                    namespace=args.metric_namespace, metric_name=metrics.ROOT_DISK_USED, statistic="Maximum",
                    comparison_operator="GreaterThanOrEqualToThreshold", threshold=DISK_USED_HIGH_PERCENT,
                    evaluation_periods=5, datapoints_to_alarm=5, treat_missing_data=NO_DATA_YET)
        if args.served_certificate:
            self._alarm(name, "certificate-expiring", args, actions,
                        alarm_description=(f"An instance serves a TLS certificate with fewer than "
                                           f"{CERTIFICATE_DAYS_LEFT_LOW} days left (renewal missed: `pulumi up` for "
                                           "the self-signed one, the ACM sync for an exported one)"),
                        namespace=args.metric_namespace, metric_name=metrics.CERTIFICATE_DAYS_LEFT,
                        statistic="Minimum", comparison_operator="LessThanThreshold",
                        threshold=CERTIFICATE_DAYS_LEFT_LOW, evaluation_periods=5, datapoints_to_alarm=5,
                        treat_missing_data=NO_DATA_YET)
        self._alarm(name, "boot-failed", args, actions,
                    alarm_description=("An instance's stun-infra-configure gave up (systemd's runs spent, or a boot "
                                       "stopped for good): its BootFailed series names it (InstanceId)"),
                    namespace=args.metric_namespace, metric_name=metrics.BOOT_FAILED, statistic="Sum",
                    comparison_operator="GreaterThanOrEqualToThreshold", threshold=1,
                    evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="notBreaching")

    def _bindings_stalled(self, name: str, key: str, args: MonitoringArgs, actions: list, description: str,
                          dimensions: dict[str, pulumi.Input[str]] | None = None) -> None:
        """Requests still arrive but nothing succeeds: the server is up for the kernel, down for clients.
        Without dimensions: the fleet series (metrics.fleet_dimensions), in both modes; with
        {InstanceId: id}: that instance's series (static mode, one alarm per instance)."""
        self._math_alarm(name, key, args, actions, description, [
            self._query("requests", args.metric_namespace, metrics.BINDING_REQUESTS, "Sum", dimensions),
            self._query("successes", args.metric_namespace, metrics.BINDING_SUCCESSES, "Sum", dimensions),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(id="stalled", return_data=True,
                                                      label="Requests without successes",
                                                      expression=STALLED_EXPRESSION)], minutes=3)
