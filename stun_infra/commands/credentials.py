"""`stun-infra credentials`: short-lived TURN credentials as an `iceServers` block.

TURN REST API credentials (username `<expiry>:<user>`, password
base64(HMAC-SHA1(secret, username))) minted from the stack's shared secret, which
comes from `--secret` or from the stack outputs on stdin
(`pulumi stack output --json --show-secrets | stun-infra credentials`). The URIs come
from the stack outputs (several regions: the global entry's, `--every-region` for each
region's too), or from TARGETs (a host gets stun:, turn: over UDP and TCP, and turns: on the
default ports). Paste the result into `new RTCPeerConnection(...)`.
"""

from __future__ import annotations

import argparse
import json
import sys

from stun_infra.commands.common import add_secret_argument, fail
from stun_infra.client.credentials import DEFAULT_USER, ice_servers, mint
from stun_infra.client.targets import (DEFAULT_STUN_PORT, DEFAULT_TLS_PORT, PIPE_HINT, InputError, Servers,
                                  format_uri, parse_port, parse_ttl, parse_uri, read_servers, server_uris, split_host_port)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("credentials", help="mint short-lived TURN credentials as an iceServers JSON block",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="host, host:port or stun:/turn:/turns: URI to list; - reads stack outputs from stdin")
    add_secret_argument(p)
    p.add_argument("--ttl", default="1h", help="lifetime: 30s, 15m, 1h ... at most 24h (default: 1h)")
    p.add_argument("--user", default=DEFAULT_USER, help=f"name in the username (default: {DEFAULT_USER})")
    p.add_argument("--every-region", action="store_true",
                   help="several regions: list every region's own URIs after the global ones "
                        "(default: the global entry's alone, which sends each client to its nearest region)")
    p.add_argument("--tls-port", default=str(DEFAULT_TLS_PORT),
                   help=f"port of the turns: URI for hosts given as TARGET (default: {DEFAULT_TLS_PORT})")
    p.set_defaults(run=run)


def _uris_for(target: str, tls_port: int) -> tuple[list[str], list[str]]:
    if ":" in target and target.split(":", 1)[0].lower() in ("stun", "stuns", "turn", "turns"):
        uri = parse_uri(target)
        return ([format_uri(uri)], []) if uri.scheme.startswith("stun") else ([], [format_uri(uri)])
    host, port = split_host_port(target, DEFAULT_STUN_PORT, target)
    return server_uris(host, stun_port=port, tls_port=tls_port)


def run(args: argparse.Namespace) -> int:
    try:
        ttl = parse_ttl(args.ttl)
        tls_port = parse_port(args.tls_port, "--tls-port")
        targets = [t for t in args.targets if t != "-"]
        servers = Servers()
        piped = sys.stdin is not None and not sys.stdin.isatty()
        if "-" in args.targets or (not targets and piped):
            if not piped:
                return fail(f"`-` reads stack outputs from stdin, but stdin is a terminal; {PIPE_HINT}")
            servers = read_servers(sys.stdin.read())
            if servers.auth_by_uri or (servers.secret is None and args.secret is None):
                return fail("stdin holds no turn_shared_secret (a STUN-only stack has no TURN credentials); "
                            f"{PIPE_HINT}, or give --secret")
        stun, turn = list(servers.stun_uris), list(servers.turn_uris)
        if (servers.global_stun_uris or servers.global_turn_uris) and not args.every_region:
            stun, turn = list(servers.global_stun_uris), list(servers.global_turn_uris)
        for target in targets:
            s, t = _uris_for(target, tls_port)
            stun += s
            turn += t
        if args.secret is None and servers.secret is None:
            return fail(f"no secret: give --secret S and TARGETs (e.g. turn.example.com), or {PIPE_HINT} "
                        "into this command")
        if not stun and not turn:
            return fail(f"no servers to list: give TARGETs (e.g. turn.example.com) or {PIPE_HINT}")
        username, password = mint(args.secret or servers.secret or "", user=args.user, ttl_seconds=ttl)
    except (InputError, ValueError) as e:
        return fail(str(e))
    print(json.dumps(ice_servers(list(dict.fromkeys(stun)), list(dict.fromkeys(turn)), username, password),
                     indent=2))
    return 0
