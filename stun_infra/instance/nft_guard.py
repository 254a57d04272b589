"""The `nft-guard` stage: our nftables tables come back after something flushed them.

`nft flush ruleset` (Debian's own nftables.service runs one at every start, from
/etc/nftables.conf) removes every table: the TURN over TLS redirects, the drain's tracking
(or, mid-drain, refusing) table and the counters with the per-source limit. Each unit loaded
its table once, at boot. `stun-nft-guard` checks every minute (its timer), and right after
nftables.service starts (it is wanted by it), and loads each missing table from its ruleset:
the drain's from the one the drain loaded last (stun_infra.instance.drain.LOADED_PATH: refusing
mid-drain), the tracking one otherwise. The kernel's connection tracking survives a flush, so a
restored drain still refuses only new flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance import binding_counters, drain, tls_ports
from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

SCRIPT_PATH = "/usr/local/sbin/stun-nft-guard"
UNITS = ("stun-nft-guard.service", "stun-nft-guard.timer")
CALENDAR = "minutely"


def tables(settings: Settings) -> dict[str, str]:
    """Table (family inet) -> the ruleset that makes it, for this stack: the drain's last."""
    found = {binding_counters.TABLE: binding_counters.RULESET_PATH}
    if tls_ports.redirected_ports(settings):
        found[tls_ports.TABLE] = tls_ports.RULESET_PATH
    return found


def script(rulesets: dict[str, str], drain_rulesets: tuple[str, str] = (drain.TRACK_RULESET, drain.REFUSE_RULESET),
           drain_loaded: str = drain.LOADED_PATH) -> str:
    """`stun-nft-guard`: bash; `rulesets` is tables(settings), the drain's table handled apart."""
    return render("stun-nft-guard.sh.j2", tables=rulesets, drain_table=drain.TABLE,
                  track=drain_rulesets[0], refuse=drain_rulesets[1], loaded=drain_loaded)


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    units = {unit: render(f"{unit}.j2", script_path=SCRIPT_PATH, calendar=CALENDAR) for unit in UNITS}
    return Stage("nft-guard", files=(InstanceFile(SCRIPT_PATH, script(tables(settings)), 0o755),),
                 units=units, enable=UNITS)
