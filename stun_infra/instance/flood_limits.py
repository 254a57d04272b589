"""What an unauthenticated stranger can make an instance write: bounded per source.

coturn 4.6.1 logs one ERROR line (67-575 bytes, the username echoed) for every TURN request
that carries a username it cannot authenticate, with or without `verbose`; one nonce serves
one 5-tuple for minutes, so no credential is needed, and one client socket sends ~17,000 of
them a second here (bench/log_flood.py): an 8 GiB root volume full in a quarter of an hour.

Two bounds, both in the package:
- the kernel drops the TURN requests that can carry credentials (Allocate, Refresh,
  CreatePermission, ChannelBind: the STUN message type, first two bytes of the UDP payload)
  beyond PER_SOURCE_RATE a second (PER_SOURCE_BURST at once) from one IPv4 address or one
  IPv6 /64, before coturn sees them (templates/stun-counters.nft.j2, the counters' table: the
  reporter loads it again when something flushed it). Bindings, ChannelData and Send
  indications (the media) are never limited. A set full of sources (SOURCES_TRACKED) limits
  no new one: it fails open;
- coturn's log is rotated by size as well as daily, checked every minute by its own timer
  (the daily logrotate.timer alone let a flood fill the disk between two runs), and older
  files are compressed: what the log can take on disk is bounded whatever the sources
  (TCP and TLS requests, which the kernel cannot tell apart in a stream, included).
"""

from __future__ import annotations

import ipaddress

# Allocate, Refresh, CreatePermission, ChannelBind requests (RFC 8656): the requests coturn
# authenticates, so the ones whose failure it logs.
CREDENTIAL_REQUEST_TYPES = ("0x0003", "0x0004", "0x0008", "0x0009")
# A TURN client sends a handful of these per call set-up (Allocate twice: the 401 challenge,
# then with credentials; a CreatePermission and a ChannelBind per peer), then a few every
# few minutes: 10 a second, 50 at once, is 600 call set-ups a minute behind one address
# (a large NAT), and at most 10 x 575 bytes = 5.75 KB/s of log per source.
PER_SOURCE_RATE = 10
PER_SOURCE_BURST = 50
IPV6_SOURCE_PREFIX = 64  # an IPv6 client holds a whole /64 at least
SOURCES_TRACKED = 65535  # per family; an idle source is forgotten after a minute
LIMITED_COUNTER = "turn_requests_limited"  # nft counter of the requests dropped

# coturn's log: rotated when over LOG_MAX_BYTES (checked every minute) or daily, LOG_KEPT kept.
LOG_MAX_MEGABYTES = 100
LOG_KEPT = 7
LOG_CHECK_CALENDAR = "minutely"


def ipv6_prefix_mask(bits: int = IPV6_SOURCE_PREFIX) -> str:
    """The mask nftables applies to an IPv6 source (`ffff:ffff:ffff:ffff::` for a /64)."""
    return str(ipaddress.IPv6Network(f"::/{bits}").netmask)


def template_values() -> dict:
    return dict(credential_types=CREDENTIAL_REQUEST_TYPES, rate=PER_SOURCE_RATE, burst=PER_SOURCE_BURST,
                ipv6_mask=ipv6_prefix_mask(), sources=SOURCES_TRACKED, limited=LIMITED_COUNTER)
