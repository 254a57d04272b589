"""TURN REST API credentials (coturn `use-auth-secret`): time-limited, minted from the shared secret.

username = "<unix expiry>:<user>", password = base64(HMAC-SHA1(secret, username)).
coturn recomputes the password from the username and refuses it once the expiry has
passed, so no per-user state lives on the servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

from stun_infra.common.text import printable

DEFAULT_USER = "stun-infra"
# coturn's STUN_MAX_USERNAME_SIZE (ns_turn_defs.h, 4.6.1): bytes of the whole `<expiry>:<user>`.
MAX_USERNAME_BYTES = 512


def password_for(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)): what coturn expects for `username`."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint(secret: str, *, user: str = DEFAULT_USER, ttl_seconds: int,
         now: float | None = None) -> tuple[str, str]:
    """(username, password) valid for `ttl_seconds` from `now` (default: the current time)."""
    if not secret:
        raise ValueError("secret: must not be empty")
    if not user or ":" in user or not user.isprintable():
        raise ValueError(f"user: got {printable(repr(user))}, must be non-empty, one line of visible characters, "
                         "and contain no ':'")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds: got {ttl_seconds}, must be positive")
    expiry = int(time.time() if now is None else now) + ttl_seconds
    username = f"{expiry}:{user}"
    if len(username.encode()) > MAX_USERNAME_BYTES:
        room = MAX_USERNAME_BYTES - len(f"{expiry}:")
        raise ValueError(f"user: {len(user.encode())} bytes is too long: coturn takes usernames "
                         f"(`<expiry>:<user>`) of at most {MAX_USERNAME_BYTES} bytes, so at most {room} for the user")
    return username, password_for(secret, username)


def ice_servers(stun_uris: Sequence[str], turn_uris: Sequence[str], username: str,
                password: str) -> dict[str, Any]:
    """A WebRTC `RTCConfiguration` fragment: `{"iceServers": [...]}`.

    STUN needs no credentials; TURN URIs (turn:/turns:) carry the minted pair. An empty
    list of either kind is left out.
    """
    servers: list[dict[str, Any]] = []
    if stun_uris:
        servers.append({"urls": list(stun_uris)})
    if turn_uris:
        servers.append({"urls": list(turn_uris), "username": username, "credential": password})
    return {"iceServers": servers}
