"""Live TURN sessions, exact, at no per-packet cost: coturn's relay sockets.

coturn 4.6.1 binds one UDP socket per allocation in its relay range (`min-port` to
`max-port`, on `relay-ip`) and closes it when the allocation ends (released or expired;
checked on the real server in tests/instance/metrics). So the number of UDP sockets
that are bound in the relay range, unconnected (no remote address) and owned by coturn's
user is the number of live allocations. The kernel lists them in /proc/net/udp and
/proc/net/udp6: reading those costs nothing per packet. The owner check keeps out the
short-lived client sockets other programs (DNS lookups, the AWS CLI) may take from the
ephemeral range, which overlaps the relay range. An allocation holding both an IPv4 and
an IPv6 relay (RFC 8656 ADDITIONAL-ADDRESS-FAMILY) counts twice; browsers ask for one.

templates/live-sessions.py.j2 holds the counting code; the metrics reporter and the drain
service include it, so both count the same way.
"""

from __future__ import annotations

from stun_infra.settings import Settings

RELAY_USER = "turnserver"  # Debian's coturn unit runs as this user


def template_values(settings: Settings) -> dict[str, object]:
    """What templates/live-sessions.py.j2 needs: the relay range ([min, max], or None with
    TURN off: nothing is relayed, nothing counted) and coturn's user."""
    ports = [settings.relay_min_port, settings.relay_max_port] if settings.turn else None
    return {"relay_ports": ports, "relay_user": RELAY_USER}
