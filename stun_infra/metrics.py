"""The fleet's metric contract: names shared by the on-instance reporter, the agent
config, the log metric filters, the dashboard and the alarms."""

from __future__ import annotations

from dataclasses import dataclass

BINDING_REQUESTS = "BindingRequests"
BINDING_SUCCESSES = "BindingSuccesses"
BINDING_ERRORS = "BindingErrors"
BINDING_METRICS = (BINDING_REQUESTS, BINDING_SUCCESSES, BINDING_ERRORS)

SESSIONS_CLOSED = "SessionsClosed"
ALLOCATIONS = "Allocations"
AUTH_FAILURES = "AuthFailures"


@dataclass(frozen=True)
class LogMetric:
    name: str
    pattern: str  # CloudWatch Logs term pattern, evaluated against coturn's real log lines in tests
    description: str


# Low-volume session events from coturn's log (bindings are never logged).
LOG_METRICS = (
    LogMetric(SESSIONS_CLOSED, '"closed (2nd stage)"', "TURN sessions closed"),
    LogMetric(ALLOCATIONS, '"ALLOCATE processed, success"', "TURN allocations granted"),
    LogMetric(AUTH_FAILURES, '"error 401" "Unauthorized" -"nonce"', "TURN requests refused for bad credentials"),
)


def namespace(stack: str) -> str:
    """One namespace per stack, so fleet-wide sums never mix two stacks."""
    return f"StunInfra/{stack}"


def log_group_name(project: str, stack: str) -> str:
    return f"/{project}/{stack}/coturn"
