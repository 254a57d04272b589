"""Draining an instance that is leaving: refuse new STUN/TURN flows, let live sessions end
(or a deadline pass), then let it go. A TURN allocation is a live call: terminating the
instance under it drops the call.

On each instance (both modes):
- templates/stun-drain.nft.j2 as TRACK_RULESET: a table `inet stun_infra_drain` whose only
  rule makes the kernel track every flow (conntrack) from boot, before coturn starts.
  Without it a drain could not tell an established UDP flow from a new one: conntrack
  takes a flow it first sees mid-stream for a new one.
- the same template as REFUSE_RULESET: new flows to coturn's listening ports (UDP and TCP
  STUN port, TLS ports) are rejected (ICMP port unreachable, TCP reset: a client moves
  on at once); established flows, and everything on the relay ports, continue.
- templates/stun-drain.py.j2 at DRAIN_PATH: `stun-drain now [--deadline S]` loads the
  refusing table and waits until coturn's live allocations (stun_infra.instance.live_sessions)
  reach zero or the deadline passes; `stun-drain cancel` loads the tracking table again.
  Autoscale, dual stack: before refusing, the drain takes the instance's IPv6 address out of
  the load balancer's IPv6 target groups (`stun-nlb-targets deregister`, the script
  stun_infra/instance/nlb_targets.py installs): the group deregisters only its own, IPv4,
  targets, and a registered address would keep receiving new IPv6 flows only to refuse them,
  then fail its health check and have its established calls reset. Deregistered, its flows
  get the deregistration delay (drainSeconds), as the IPv4 ones do
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html#deregistration-delay).
  `cancel` registers it again.
Autoscale mode adds stun-drain.service, `stun-drain watch`: it polls IMDSv2's
`autoscaling/target-lifecycle-state` and, when it says `Terminated`, drains, then
completes the group's termination lifecycle action itself (`aws autoscaling
complete-lifecycle-action`, the group's name from the instance's `aws:autoscaling:groupName`
tag). With reuse on scale-in the group returns instances to its warm pool instead: the state
says `Warmed:*`, and the instance drains the same way, then completes the same termination
hook's action, which holds it on its way back into the pool (Warmed:Pending:Wait, with
EC2_INSTANCE_TERMINATING: https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pools-eventbridge-events.html).
Static mode: the stack's SSM document runs `stun-drain now` (Run Command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance import launch, live_sessions, nlb_targets
from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import DRAIN_SECONDS, Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

TABLE = "stun_infra_drain"
DRAIN_PATH = "/usr/local/sbin/stun-drain"
TRACK_RULESET = "/etc/stun-infra/stun-drain-track.nft"
REFUSE_RULESET = "/etc/stun-infra/stun-drain-refuse.nft"
# The watcher's user: allocated by systemd while it runs (DynamicUser=), holding CAP_NET_ADMIN
# alone (load a table); the socket tables, IMDS and the AWS API need no privilege.
WATCH_USER = "stun-drain"
RUNTIME_DIRECTORY = "stun-drain"  # systemd's RuntimeDirectory=: the watcher's, kept until shutdown
LOADED_PATH = f"/run/{RUNTIME_DIRECTORY}/ruleset"  # which of the two the drain loaded last
# `stun-drain watch` exits with this when it let the group return the instance to a pool kept
# Running: its unit then has systemd (as root) start launch.AWAIT_UNIT.
IN_RUNNING_POOL_STATUS = 4
ENV_PATH = "/etc/stun-infra/drain.env"  # the watcher's EnvironmentFile
ENV_NAMES = ("STUN_DRAIN_REGION", "STUN_DRAIN_INSTANCE_ID", "STUN_DRAIN_HOOK")
TRACK_UNIT = "stun-drain-track.service"
WATCH_UNIT = "stun-drain.service"
POLL_SECONDS = 5        # lifecycle state and live sessions are read this often
# The hook waits this much longer than the instance drains, so the instance, not the
# timeout, ends the wait: room for its last count and the complete-lifecycle-action call.
HOOK_MARGIN_SECONDS = 120
AWS_CALL_TIMEOUT_SECONDS = 30


def hook_name(settings: Settings) -> str:
    return f"{settings.prefix}-drain"


def hook_timeout(settings: Settings) -> int:
    """The termination hook's heartbeat timeout: at most 3720 s, inside PutLifecycleHook's
    30-7200 s (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html)."""
    return settings.drain_seconds + HOOK_MARGIN_SECONDS


def ports(settings: Settings) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(UDP, TCP) ports where new flows are refused while draining: coturn's listeners."""
    return (settings.stun_port,), tuple(sorted({settings.stun_port, *settings.tls.coturn_ports}))


def ruleset(settings: Settings, *, refuse: bool) -> str:
    udp, tcp = ports(settings)
    return render("stun-drain.nft.j2", table=TABLE, refuse=refuse, udp_ports=udp, tcp_ports=tcp)


def script(settings: Settings, ipv6_targets_script: str | None = None) -> str:
    """The drain program, python3 with the standard library only (Debian's python3 runs it).
    `ipv6_targets_script`: the stun-nlb-targets script, when the instance joins IPv6 target groups."""
    returns = launch.returns_to_pool(settings)
    return render("stun-drain.py.j2", drain_seconds=settings.drain_seconds, max_seconds=DRAIN_SECONDS[1],
                  hook_seconds=hook_timeout(settings), poll_seconds=POLL_SECONDS,
                  track_ruleset=TRACK_RULESET, refuse_ruleset=REFUSE_RULESET, loaded_path=LOADED_PATH,
                  env_names=list(ENV_NAMES),
                  aws_timeout=AWS_CALL_TIMEOUT_SECONDS, ipv6_targets_script=ipv6_targets_script,
                  ipv6_targets_seconds=nlb_targets.DEREGISTER_SECONDS,
                  returns_to_pool=returns, awaits_in_pool=awaits_in_pool(settings),
                  in_running_pool=IN_RUNNING_POOL_STATUS,
                  **live_sessions.template_values(settings))


def awaits_in_pool(settings: Settings) -> bool:
    """A scale-in returns the instance to a warm pool kept Running, where launch.AWAIT_UNIT
    waits for it to be put in service again."""
    return launch.returns_to_pool(settings) and settings.warm_pool == "Running"


def units(settings: Settings) -> dict[str, str]:
    values = dict(table=TABLE, track_ruleset=TRACK_RULESET, loaded_path=LOADED_PATH, drain_path=DRAIN_PATH,
                  env_path=ENV_PATH, user=WATCH_USER, runtime_directory=RUNTIME_DIRECTORY, in_running_pool=IN_RUNNING_POOL_STATUS,
                  await_unit=launch.AWAIT_UNIT if awaits_in_pool(settings) else None)
    names = (TRACK_UNIT, WATCH_UNIT) if settings.autoscale else (TRACK_UNIT,)
    return {unit: render(f"{unit}.j2", **values) for unit in names}


def document_command(deadline: str) -> str:
    """What the static fleet's SSM document runs (`deadline`: its parameter, digits only)."""
    return f"{DRAIN_PATH} now --deadline {deadline}"


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    """The drain program, its rulesets and units (every flow tracked from boot; autoscale: the
    lifecycle watcher); the script writes the watcher's region and instance id."""
    targets = nlb_targets.SCRIPT_PATH if boot.ipv6_target_groups else None
    return Stage(
        "drain",
        files=(InstanceFile(DRAIN_PATH, script(settings, targets), 0o755),
               InstanceFile(TRACK_RULESET, ruleset(settings, refuse=False)),
               InstanceFile(REFUSE_RULESET, ruleset(settings, refuse=True))),
        units=units(settings), enable=tuple(units(settings)),
        script=render("stages/drain.sh.j2", env_path=ENV_PATH, env_names=ENV_NAMES, hook_name=hook_name(settings)))
