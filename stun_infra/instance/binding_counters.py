"""Exact STUN counts at 0 log bytes per message: kernel counters and their reporter.

On each instance:
- templates/stun-counters.nft.j2 is a table `inet stun_infra` with one named counter per
  counted STUN message class on UDP `stun_port`. The STUN message type is the first 2
  bytes of the UDP payload (`@th,64,16`): binding requests (0x0001) are counted inbound to
  the port, binding success (0x0101) and error (0x0111) responses and TURN Allocate
  success responses (0x0103) outbound from it. A datagram to the port whose first two
  bytes are 0x0001 is a request whatever follows (a truncated or malformed request is
  still one that arrived); coturn's answers are counted as it sends them. TCP and TLS
  messages are not counted (a stream has no per-message header to match).
- Allocate successes are the allocations coturn granted over UDP. Allocate *errors*
  (0x0113) are not counted: every allocation opens with a 401 challenge error, so their
  count would be allocation attempts plus refusals, not failures (refused credentials
  are the AuthFailures log metric). A client that retransmits an Allocate whose answer
  was lost gets the success again and is counted again (rare: loss on the return path).
  Nothing else coturn sends from the STUN port starts with 0x0103: ChannelData starts
  with a channel number (0x4000-0x7FFF), relayed data leaves from the relay ports.
- stun-counters.service loads the table at boot, before coturn;
- stun-metrics.timer runs templates/stun-metrics-reporter.py.j2 once a minute (a calendar timer): it reads the
  counters (`nft -j list table inet stun_infra`), computes the packets counted since its
  last run (a reboot or a reloaded table restarts the counters: the reading is then the
  delta) and publishes them with `aws cloudwatch put-metric-data` (the instance role's
  credentials, from the metadata service). Region, namespace and instance id come from
  METRICS_ENV_PATH, which the `metrics` stage writes. A failed or timed-out
  publish keeps the previous state, so its counts go out with the next run.

How they land in CloudWatch is described in stun_infra.instance.metrics (`counter_dimension_sets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stun_infra.instance import flood_limits, live_sessions, metrics
from stun_infra.settings import Settings
from stun_infra.instance.services import CONFIGURED
from stun_infra.instance.stage import InstanceFile, Stage, unit_settings
from stun_infra.instance.templating import render

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

TABLE = "stun_infra"
RULESET_PATH = "/etc/stun-infra/stun-counters.nft"
REPORTER_PATH = "/usr/local/sbin/stun-metrics-reporter"
# The reporter's own state directory (systemd's StateDirectory=, writable by its user alone).
STATE_DIRECTORY = "stun-metrics"
STATE_PATH = f"/var/lib/{STATE_DIRECTORY}/state.json"
# Its user: allocated by systemd while it runs (DynamicUser=), holding CAP_NET_ADMIN alone
# (nftables: read the counters, load the table again after a flush).
REPORTER_USER = "stun-metrics"
METRICS_ENV_PATH = "/etc/stun-infra/metrics.env"  # the reporter unit's EnvironmentFile
# Its variables: region, namespace, instance id, the private IPv4 coturn's TLS listener is on
# (the reporter's --region/--namespace/--instance-id/--tls-address).
METRICS_ENV = ("STUN_METRICS_REGION", "STUN_METRICS_NAMESPACE", "STUN_METRICS_INSTANCE_ID", "STUN_METRICS_TLS_ADDRESS")
REPORT_INTERVAL_SECONDS = 60
REPORT_CALENDAR = "*-*-* *:*:30"  # every minute, at its 30th second (systemd.time(7))
PUBLISH_TIMEOUT_SECONDS = 30  # one `aws cloudwatch put-metric-data`, then it is killed
CERTIFICATE_TIMEOUT_SECONDS = 5  # the TLS handshake that reads the certificate coturn serves


@dataclass(frozen=True)
class StunCounter:
    name: str          # nft counter name
    metric: str        # CloudWatch metric name
    message_type: str  # STUN message type, first 2 bytes of the UDP payload
    inbound: bool      # requests arrive on the port; responses leave from it
    family: str = ""   # "ipv6": only what came over IPv6 (`meta nfproto ipv6`); "": both families


COUNTERS = (
    StunCounter("binding_requests", metrics.BINDING_REQUESTS, "0x0001", True),
    StunCounter("binding_requests_ipv6", metrics.BINDING_REQUESTS_IPV6, "0x0001", True, "ipv6"),
    StunCounter("binding_successes", metrics.BINDING_SUCCESSES, "0x0101", False),
    StunCounter("binding_errors", metrics.BINDING_ERRORS, "0x0111", False),
    StunCounter("allocate_successes", metrics.UDP_ALLOCATIONS, "0x0103", False),
)


def nft_ruleset(settings: Settings) -> str:
    """The nftables file that creates (or recreates) the counting table, with the per-source
    limit on credential-carrying TURN requests (stun_infra.instance.flood_limits)."""
    return render("stun-counters.nft.j2", table=TABLE, port=settings.stun_port, counters=COUNTERS,
                  limits=flood_limits.template_values(),
                  requests=[c for c in COUNTERS if c.inbound], responses=[c for c in COUNTERS if not c.inbound])


def reporter_script(settings: Settings) -> str:
    """The reporter, a python3 script (standard library only: Debian's python3 runs it).
    With TURN on it also publishes the live sessions (stun_infra.instance.live_sessions)."""
    return render("stun-metrics-reporter.py.j2", table=TABLE, metrics={c.name: c.metric for c in COUNTERS},
                  dimension_sets=metrics.counter_dimension_sets(), instance_dimension=metrics.INSTANCE_DIMENSION,
                  ruleset_path=RULESET_PATH, state_path=STATE_PATH, publish_timeout=PUBLISH_TIMEOUT_SECONDS,
                  env_names=list(METRICS_ENV), live_metric=metrics.LIVE_SESSIONS,
                  heartbeat_metric=metrics.HEARTBEAT, disk_metric=metrics.ROOT_DISK_USED, units=metrics.GAUGE_UNITS,
                  certificate_metric=metrics.CERTIFICATE_DAYS_LEFT,
                  tls_port=None if settings.tls.ends_at_load_balancer else settings.tls.coturn_port,
                  certificate_timeout=CERTIFICATE_TIMEOUT_SECONDS,
                  **live_sessions.template_values(settings))


UNITS = ("stun-counters.service", "stun-metrics.service", "stun-metrics.timer")
# [Install] settings `systemctl enable` acts on (systemd.unit(5)); DefaultInstance= only
# matters for template units, which these are not.
INSTALL_SETTINGS = ("WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also")


def systemd_units() -> dict[str, str]:
    """Unit file name -> text: the table at boot (before coturn), the reporter once a minute."""
    values = dict(table=TABLE, ruleset_path=RULESET_PATH, reporter_path=REPORTER_PATH, user=REPORTER_USER,
                  state_directory=STATE_DIRECTORY, calendar=REPORT_CALENDAR,
                  env_path=METRICS_ENV_PATH, configured=CONFIGURED)
    return {unit: render(f"{unit}.j2", **values) for unit in UNITS}


def carries_install_info(text: str) -> bool:
    """Whether `systemctl enable` links a unit with this text: its [Install] section sets one
    of INSTALL_SETTINGS (an empty assignment resets it). A unit without one (the reporter's
    service, which only its timer starts) is left alone by `enable`, with a notice."""
    values: dict[str, list[str]] = {}
    for key, assigned in unit_settings(text, "Install").items():
        if key in INSTALL_SETTINGS:
            for value in assigned:
                values[key] = (values.get(key, []) + value.split()) if value else []
    return any(values.values())


def enabled_units() -> tuple[str, ...]:
    """The units the boot script enables, then (re)starts: those with install info, derived
    from the unit texts (the table's service and the reporter's timer)."""
    return tuple(unit for unit, text in systemd_units().items() if carries_install_info(text))


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    """The ruleset, the reporter and their units; the script writes the reporter's region and
    instance id (from IMDS) into its EnvironmentFile."""
    return Stage(
        "metrics",
        files=(InstanceFile(RULESET_PATH, nft_ruleset(settings)),
               InstanceFile(REPORTER_PATH, reporter_script(settings), 0o755)),
        units=systemd_units(), enable=enabled_units(),
        script=render("stages/metrics.sh.j2", env_path=METRICS_ENV_PATH, env_names=METRICS_ENV,
                      namespace=metrics.namespace(settings.stack)))
