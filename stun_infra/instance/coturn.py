"""coturn's configuration: Python computes every value, templates/turnserver.conf.j2 prints them.

The same template is rendered twice:
- by `stun-infra render` and the tests, with real addresses and a real secret;
- into the boot script, with shell references as values (`public_ip="${PUBLIC_IPV4}"`)
  inside an unquoted heredoc, so the shell fills them in on the instance.
That is why `turnserver_conf` passes the address and secret values through untouched:
validating or reformatting them here would break the shell references.

coturn 4.6.1 fails open (see ../shared/FIELD-NOTES.md): a line it does not understand
is logged and skipped. The deny list is therefore written in the only notation 4.6.1
accepts (`first-last`, never CIDR) and the rendered file is run by the real server in
tests/instance/coturn.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stun_infra.instance import flood_limits
from stun_infra.instance.downloads import CLOUDWATCH_AGENT_USER
from stun_infra.instance.live_sessions import RELAY_USER
from stun_infra.settings import Settings
from stun_infra.instance.services import CONFIGURE_UNIT, CONFIGURED
from stun_infra.instance.stage import UNIT_DIR, InstanceFile, Stage
from stun_infra.instance.templating import render

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

TEMPLATE = "turnserver.conf.j2"


@dataclass(frozen=True)
class CoturnPaths:
    """Where coturn finds its TLS certificate and key, and where it logs."""

    cert: str
    key: str
    log_file: str
    secret_db: str = "/var/lib/turn/turndb"  # coturn's SQLite store: the TURN secrets it accepts


INSTANCE_PATHS = CoturnPaths(
    cert="/etc/coturn/tls/cert.pem",
    key="/etc/coturn/tls/key.pem",
    log_file="/var/log/coturn/turnserver.log",
)


def local_paths(out_dir: Path) -> CoturnPaths:
    """Paths inside `out_dir`, for a config rendered to run on this machine."""
    out_dir = Path(out_dir).resolve()
    return CoturnPaths(
        cert=str(out_dir / "cert.pem"),
        key=str(out_dir / "key.pem"),
        log_file=str(out_dir / "turnserver.log"),
        secret_db=str(out_dir / "turndb"),
    )


# Peers a relay must never reach: (CIDR, why). Everything a client can name that is
# not a public unicast address, in IPv4 and in every IPv6 notation that can carry an
# IPv4 address. The documentation ranges (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32) are deliberately absent: they are never routed on
# the internet, so denying them protects nothing, and the tests give the relay a
# peer inside them to prove that an allowed relay still works.
#
# coturn 4.6.1 reads an all-zero bound (0.0.0.0 or ::) as "no bound", and sorts every
# IPv4 address below every IPv6 address: a range starting at `::` denies every IPv4
# peer (a `::/96` line silently turns TURN off). So a range never starts at the zero
# address; it starts one above, and coturn refuses the zero address itself (tested).
DENIED_PEER_NETWORKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network', includes 0.0.0.0"),
    ("10.0.0.0/8", "private (RFC 1918), VPC addresses"),
    ("100.64.0.0/10", "carrier-grade NAT shared space (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local: the instance metadata service 169.254.169.254, the VPC DNS"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved, includes broadcast 255.255.255.255"),
    ("::/96", "loopback ::1 and IPv4-compatible ::a.b.c.d (deprecated)"),
    ("::ffff:0:0/96", "IPv4-mapped ::ffff:a.b.c.d: bypasses IPv4 denies below coturn 4.9.0 (CVE-2026-27624)"),
    ("64:ff9b::/96", "NAT64 well-known prefix: embeds an IPv4 address"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix (RFC 8215): embeds an IPv4 address"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments, includes Teredo 2001::/32 (embeds an IPv4 address)"),
    ("2002::/16", "6to4: embeds an IPv4 address"),
    ("fc00::/7", "unique-local, includes the AWS metadata service fd00:ec2::254"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)


def _address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}"  # the notation clients write
    return str(addr)


def address_range(cidr: str) -> str:
    """`first-last` for a CIDR block: the only range notation coturn 4.6.1 accepts.

    A block starting at the zero address starts one above it (see above).
    """
    net = ipaddress.ip_network(cidr, strict=True)
    first = net.network_address
    if int(first) == 0:
        first += 1
    return f"{_address(first)}-{_address(net.broadcast_address)}"


DENIED_PEER_RANGES: tuple[str, ...] = tuple(address_range(cidr) for cidr, _ in DENIED_PEER_NETWORKS)


def turnserver_conf(settings: Settings, *, public_ip: str, private_ip: str, turn_secret: str,
                    paths: CoturnPaths, ipv6: str = "", secret_store: bool = False) -> str:
    """The text of turnserver.conf for one instance.

    `public_ip`, `private_ip`, `turn_secret` and `ipv6` are printed exactly as given (they
    may be shell references such as `${PUBLIC_IPV4}`). With `settings.turn` false the server
    is STUN-only and `turn_secret` is not used. A non-empty `ipv6` (the instance's own
    address, not NATed) adds a listener on it and, with TURN, a relay address.
    `secret_store` takes the TURN secrets from coturn's SQLite store at `paths.secret_db`
    instead of `turn_secret` (several at once, changed without a restart: secret_sync.py).
    """
    return render(
        TEMPLATE,
        turn=settings.turn,
        realm=settings.realm,
        listening_port=settings.stun_port,
        tls_listening_port=settings.tls.coturn_port,
        coturn_tls=not settings.tls.ends_at_load_balancer,
        min_port=settings.relay_min_port,
        max_port=settings.relay_max_port,
        user_quota=settings.user_quota,
        total_quota=settings.total_quota,
        max_bps=settings.max_bps,
        public_ip=public_ip,
        private_ip=private_ip,
        ipv6=ipv6,
        turn_secret=turn_secret if settings.turn else "",
        secret_store=secret_store,
        secret_db=paths.secret_db,
        cert=paths.cert,
        pkey=paths.key,
        log_file=paths.log_file,
        verbose=settings.session_logging and settings.turn,
        denied_peers=[(address_range(cidr), why) for cidr, why in DENIED_PEER_NETWORKS],
    )


# The group that may read coturn's log: the CloudWatch agent's user's own (it ships the log).
LOG_READER = CLOUDWATCH_AGENT_USER
DROP_IN_PATH = f"{UNIT_DIR}/coturn.service.d/stun-infra.conf"
# Not in /etc/logrotate.d: its own timer is the one runner, every minute (flood_limits).
LOGROTATE_PATH = "/etc/stun-infra/coturn.logrotate"
LOGROTATE_STATE = "/var/lib/logrotate/stun-infra-coturn.status"  # logrotate's own folder
LOGROTATE_UNITS = ("stun-coturn-logrotate.service", "stun-coturn-logrotate.timer")
# After Debian's 50unattended-upgrades: apt appends list entries across files.
UNATTENDED_UPGRADES_PATH = "/etc/apt/apt.conf.d/51stun-infra-unattended-upgrades"
NEVER_UPGRADED_UNATTENDED = ("coturn",)  # restarting it drops every call: it rolls with new instances


def privileged_ports(settings: Settings) -> list[int]:
    """Listening ports below 1024: coturn's user gets CAP_NET_BIND_SERVICE for them."""
    return sorted(p for p in (settings.stun_port, *settings.tls.coturn_ports) if p < 1024)


def log_rotation(log_file: str, owner: str = RELAY_USER, reader: str = LOG_READER) -> str:
    """logrotate's config for coturn's log: daily, or sooner by size (flood_limits); the new
    log `owner`'s, readable by the group `reader` (the CloudWatch agent's user)."""
    return render("coturn.logrotate.j2", log_file=log_file, owner=owner, reader=reader,
                  max_megabytes=flood_limits.LOG_MAX_MEGABYTES,
                  kept=flood_limits.LOG_KEPT, timer=LOGROTATE_UNITS[1])


def log_rotation_units(config: str = LOGROTATE_PATH, state: str = LOGROTATE_STATE) -> dict[str, str]:
    """The rotation's service (logrotate on that config alone, its own state) and its timer."""
    values = dict(config=config, state=state, calendar=flood_limits.LOG_CHECK_CALENDAR,
                  max_megabytes=flood_limits.LOG_MAX_MEGABYTES)
    return {unit: render(f"{unit}.j2", **values) for unit in LOGROTATE_UNITS}


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    """turnserver.conf with this start's addresses (two renderings: with the instance's IPv6
    address when IMDS has one, else without; each equals `stun-infra render` for the same
    inputs; the TURN secrets are in coturn's store, see secret_sync.py), coturn's drop-in, its
    log rotation, and its exclusion from unattended upgrades."""
    shell = dict(public_ip="${PUBLIC_IPV4}", private_ip="${PRIVATE_IPV4}", turn_secret="",
                 paths=INSTANCE_PATHS, secret_store=True)
    return Stage(
        "coturn",
        files=(InstanceFile(DROP_IN_PATH, render("coturn-drop-in.conf.j2", privileged_ports=privileged_ports(settings),
                                                        configure_unit=CONFIGURE_UNIT, configured=CONFIGURED)),
               InstanceFile(LOGROTATE_PATH, log_rotation(INSTANCE_PATHS.log_file)),
               InstanceFile(UNATTENDED_UPGRADES_PATH,
                            render("coturn.unattended-upgrades.j2", packages=NEVER_UPGRADED_UNATTENDED))),
        units=log_rotation_units(), enable=(LOGROTATE_UNITS[1],),
        script=render("stages/coturn.sh.j2", boot=boot, paths=INSTANCE_PATHS, log_reader=LOG_READER,
                      turnserver_conf=turnserver_conf(settings, **shell),
                      turnserver_conf_ipv6=turnserver_conf(settings, **shell, ipv6="${IPV6}")))
