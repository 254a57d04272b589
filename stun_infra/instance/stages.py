"""The boot stages, in the order `stun-infra-configure` runs them: a new stage is a module
with a `stage(settings, boot) -> Stage | None` (None: not for this stack) and one line here."""

from __future__ import annotations

from typing import Callable

from stun_infra.instance import (addresses, binding_counters, cloudwatch_agent, conntrack, coturn, downloads, drain,
                                 launch, nft_guard, nlb_targets, secret_sync, secrets, services, tls_ports, tls_sync)
from stun_infra.instance.boot_inputs import BootInputs
from stun_infra.instance.stage import Stage
from stun_infra.settings import Settings

STAGES: tuple[Callable[[Settings, BootInputs], Stage | None], ...] = (
    addresses.stage,          # metadata: addresses, instance id, region from IMDS
    downloads.stage,          # agents: AWS's CloudWatch and SSM agents, verified
    launch.warmed_stage,      # warm-pool: autoscale; an instance going into a warm pool stops here
    secrets.stage,            # secrets: Parameter Store
    secret_sync.stage,        # secret-sync: TURN secrets into coturn's store, then every minute
    coturn.stage,             # coturn: turnserver.conf, drop-in, log rotation
    conntrack.stage,          # conntrack: the connection-tracking table sized for the instance type
    tls_sync.stage,           # tls-sync: static mode with ACM, the exported certificate
    tls_ports.stage,          # tls-ports: the other TLS ports redirected to coturn's
    cloudwatch_agent.stage,   # cloudwatch-agent
    binding_counters.stage,   # metrics: kernel counters and their reporter
    drain.stage,              # drain
    nft_guard.stage,          # nft-guard: our nftables tables loaded again after a flush
    services.stage,           # services: coturn, the SSM agent
    nlb_targets.stage,        # nlb-ipv6: autoscale, dual stack
    launch.stage,             # launch: autoscale; the group may put the instance in service
)


def stages(settings: Settings, boot: BootInputs) -> tuple[Stage, ...]:
    found = tuple(s for make in STAGES if (s := make(settings, boot)) is not None)
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names repeat: {names}")
    return found
