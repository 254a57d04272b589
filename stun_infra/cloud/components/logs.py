"""Server logs: coturn's log group (with retention) and the metric filters on it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT
from stun_infra.instance.metrics import log_metrics


@dataclass(frozen=True)
class LogsArgs:
    log_group_name: str
    retention_days: int
    metric_namespace: str
    session_logging: bool
    tags: dict[str, str]


class ServerLogs(pulumi.ComponentResource):
    log_group: aws.cloudwatch.LogGroup

    def __init__(self, name: str, args: LogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:monitoring:ServerLogs", name, None, opts)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-coturn", name=args.log_group_name, retention_in_days=args.retention_days,
            tags=tagged(args.tags, args.log_group_name), opts=child_opts(self))
        for metric in log_metrics(args.session_logging):
            aws.cloudwatch.LogMetricFilter(
                f"{name}-{metric.name.lower()}", log_group_name=self.log_group.name, pattern=metric.pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric.name, namespace=args.metric_namespace, value="1", default_value="0",
                    unit="Count"),
                opts=child_opts(self))
        self.register_outputs({"log_group_name": self.log_group.name, "log_group_arn": self.log_group.arn})
