"""TURN over TLS on more than one port: coturn binds one, nftables redirects the others to it.

coturn 4.6.1 opens `alt-tls-listening-port` only for RFC 5780 (two listening addresses);
an instance has one, so a second `tls-listening-port` is not possible (checked against
the real server). A `redirect` in the prerouting hook keeps the client's address, so
coturn sees the real client on every port; it applies to what arrives from the network
(a connection made on the instance itself to the other port is not redirected).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.settings import Settings
from stun_infra.instance.templating import render

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

TABLE = "stun_infra_tls"
RULESET_PATH = "/etc/stun-infra/tls-ports.nft"
UNIT = "stun-tls-ports.service"


def redirected_ports(settings: Settings) -> tuple[int, ...]:
    """Instance TLS ports other than coturn's own."""
    return tuple(p for p in settings.tls.instance_ports if p != settings.tls.coturn_port)


def ruleset(settings: Settings) -> str:
    """The nftables table, or "" when there is nothing to redirect."""
    ports = redirected_ports(settings)
    if not ports:
        return ""
    return render("tls-ports.nft.j2", table=TABLE, ports=ports, target=settings.tls.coturn_port)


def stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    """The ruleset and the unit that loads it at every start (before coturn serves); none
    when there is nothing to redirect."""
    text = ruleset(settings)
    if not text:
        return None
    return Stage("tls-ports", files=(InstanceFile(RULESET_PATH, text),),
                 units={UNIT: render("tls-ports.service.j2", table=TABLE, ruleset_path=RULESET_PATH)},
                 enable=(UNIT,))
