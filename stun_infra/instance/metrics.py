"""The fleet's metric contract: names shared by the on-instance reporter, the log
metric filters, the dashboard and the alarms."""

from __future__ import annotations

from dataclasses import dataclass

BINDING_REQUESTS = "BindingRequests"
BINDING_SUCCESSES = "BindingSuccesses"
BINDING_ERRORS = "BindingErrors"
BINDING_METRICS = (BINDING_REQUESTS, BINDING_SUCCESSES, BINDING_ERRORS)
# The binding requests that came over IPv6 (of BINDING_REQUESTS): the family split costs one
# more kernel rule on the STUN port, no log byte and no user-space work per binding.
BINDING_REQUESTS_IPV6 = "BindingRequestsIPv6"
# TURN allocations granted over UDP, kernel counter (Allocate success responses sent from
# the STUN port): free and always on. TCP/TLS allocations are not counted.
UDP_ALLOCATIONS = "UdpAllocations"
COUNTER_METRICS = (*BINDING_METRICS, BINDING_REQUESTS_IPV6, UDP_ALLOCATIONS)  # every metric the kernel counters feed
# TURN allocations live on an instance when the reporter runs (a gauge, not a count of
# events): coturn's UDP relay sockets, read from the kernel's socket table (see
# stun_infra.instance.live_sessions). Published beside the counters, with the same
# dimension sets, only with TURN on. Each instance reports once a minute (timer runs >= 60 s
# apart), so the no-dimension series' Sum over a minute is the fleet's live sessions.
LIVE_SESSIONS = "LiveSessions"
# Published by every run of the reporter, with the same dimension sets: 1 (so the fleet
# series' Sum over a minute is the number of instances reporting, which divides the live
# sessions for scaling and is compared with the instances in service for the alarm), and the
# root file system's used space in percent. Both go out even when the counters cannot (a
# state that cannot be saved): a full disk still says so.
HEARTBEAT = "ReporterHeartbeat"
ROOT_DISK_USED = "RootDiskUsedPercent"
# Days left on the certificate coturn serves (what its TLS listener presents in a handshake, not
# the file on disk); only where coturn serves TLS itself (not behind the load balancer's TLS
# listeners).
CERTIFICATE_DAYS_LEFT = "CertificateDaysLeft"
GAUGE_UNITS = {HEARTBEAT: "Count", ROOT_DISK_USED: "Percent", CERTIFICATE_DAYS_LEFT: "None"}
# 1 when stun-infra-configure gave up (systemd's runs spent, or a boot stopped for good),
# published by stun-boot-failed with the same dimension sets; nothing otherwise.
BOOT_FAILED = "BootFailed"

SESSIONS_CLOSED = "SessionsClosed"
ALLOCATIONS = "Allocations"
AUTH_FAILURES = "AuthFailures"


@dataclass(frozen=True)
class LogMetric:
    name: str
    pattern: str  # CloudWatch Logs term pattern, evaluated against coturn's real log lines in tests
    description: str
    needs_session_logging: bool = False  # coturn writes the line only with `verbose`


# Low-volume session events from coturn's log (bindings are never logged). Each pattern is
# ONE quoted term: a plain substring match, the form moto evaluates faithfully, so
# tests/instance/metrics checks each against real coturn 4.6.1 log lines with exact counts.
# - AuthFailures: coturn logs this ERROR line for a wrong password and for an expired REST
#   credential, with or without `verbose`. The 401 challenge that opens every allocation
#   ("error 401: Unauthorized", user <>) is not a failure and does not match.
# - Allocations and SessionsClosed: coturn 4.6.1 writes these lines only with `verbose`.
#   "delete: realm=" is logged once per allocation that ends (released with lifetime 0 or
#   expired); "closed (2nd stage)" would also count every binding-only client and every
#   refused session, so it is not used. Without `verbose`, UDP_ALLOCATIONS (kernel counter)
#   still counts the allocations granted over UDP; the log metric also counts TCP/TLS ones.
LOG_METRICS = (
    LogMetric(SESSIONS_CLOSED, '"delete: realm="', "TURN allocations ended (released or expired)", True),
    LogMetric(ALLOCATIONS, '"ALLOCATE processed, success"', "TURN allocations granted", True),
    LogMetric(AUTH_FAILURES, '"check_stun_auth: Cannot find credentials"',
              "TURN requests refused for a wrong or expired credential"),
)

# How the kernel counters (COUNTER_METRICS) land in CloudWatch. The on-instance reporter
# (stun_infra.instance.binding_counters) publishes them itself with PutMetricData (the AWS CLI,
# signed with the instance role), each metric twice per run, with explicit dimensions:
# per instance (InstanceId) and with no dimension at all. The namespace belongs to one
# stack, so one fleet: CloudWatch sums the no-dimension datapoints of every instance into
# the fleet series, in static and autoscale mode alike. Nothing goes through the
# CloudWatch agent (its StatsD input, and the aggregation_dimensions rollups, are not used).
INSTANCE_DIMENSION = "InstanceId"


def fleet_dimensions() -> list[str]:
    """Dimension names of the fleet-wide counter metrics the dashboard and alarms read: none."""
    return []


def counter_dimension_sets() -> list[list[str]]:
    """Every dimension-name set a counter metric is published with: per instance, then the fleet."""
    return [[INSTANCE_DIMENSION], fleet_dimensions()]


def log_metrics(session_logging: bool) -> tuple[LogMetric, ...]:
    """The log metrics whose lines coturn writes with this setting."""
    return tuple(m for m in LOG_METRICS if session_logging or not m.needs_session_logging)


def namespace(stack: str) -> str:
    """One namespace per stack, so fleet-wide sums never mix two stacks."""
    return f"StunInfra/{stack}"


def log_group_name(project: str, stack: str) -> str:
    return f"/{project}/{stack}/coturn"
