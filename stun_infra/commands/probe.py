"""`stun-infra probe`: test live STUN/TURN servers from here.

For every endpoint: a STUN binding over UDP and TCP (round-trip time, mapped
address), a TLS handshake on the TLS port (protocol, certificate expiry; a
self-signed certificate is reported, not failed), and a TURN ALLOCATE with freshly
minted credentials when the secret is known. Targets come from the command line
(`host`, `host:port`, `stun:host:port`, `turn:host:port?transport=udp`,
`turns:host:port`) or, with `-`, from stdin: `pulumi stack output --json
--show-secrets`, or the `iceServers` block `stun-infra local` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from stun_infra.commands.common import add_secret_argument, fail, timeout_seconds
from stun_infra.client.credentials import mint
from stun_infra.client.targets import (DEFAULT_TLS_PORT, InputError, Servers, parse_port, plan_checks,
                                      read_servers)
from stun_infra.client.probing import (as_json, failure_line, progress_line, run_checks, summary, table,
                                      with_families)

PROBE_USER = "stun-infra-probe"
PROBE_TTL = 600


def retry_count(text: str) -> int:
    if not text.isdigit() or int(text) > 10:
        raise InputError(f"--retries {text!r}: expected a whole number from 0 to 10")
    return int(text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="test live STUN/TURN/TLS endpoints (a deployment, or `local`)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="host, host:port, stun:/turn:/turns: URI, or - for stack outputs on stdin")
    add_secret_argument(p)
    p.add_argument("--user", default=PROBE_USER, help=f"name in the minted TURN username (default: {PROBE_USER})")
    p.add_argument("--tls-port", default=str(DEFAULT_TLS_PORT),
                   help=f"TLS port for hosts given without a turns: URI (default: {DEFAULT_TLS_PORT})")
    p.add_argument("--timeout", default="3", help="seconds per attempt, at most 60 (default: 3)")
    p.add_argument("--retries", default="1", help="extra attempts after a timeout, 0-10 (default: 1)")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.set_defaults(run=run)


def read_stdin_servers() -> Servers:
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("`-` reads stack outputs from stdin, but stdin is a terminal; "
                         "pipe `pulumi stack output --json --show-secrets`")
    return read_servers(sys.stdin.read())


def run(args: argparse.Namespace) -> int:
    try:
        timeout, retries = timeout_seconds(args.timeout), retry_count(args.retries)
        tls_port = parse_port(args.tls_port, "--tls-port")
        targets: list[str] = []
        servers = Servers()
        for target in args.targets:
            if target == "-":
                servers = read_stdin_servers()
                targets += servers.targets()
            else:
                targets.append(target)
        if not targets:
            return fail("nothing to probe: give TARGETs (e.g. stun.example.com or turns:203.0.113.10:5349) "
                        "or `-` with `pulumi stack output --json --show-secrets` on stdin")
        secret = args.secret or servers.secret
        auth = mint(secret, user=args.user, ttl_seconds=PROBE_TTL) if secret else None
        checks = plan_checks(targets, tls_port=tls_port, auth=auth, auth_by_uri=dict(servers.auth_by_uri))
    except (InputError, ValueError) as e:
        return fail(str(e))
    checks = asyncio.run(with_families(checks, timeout))

    hosts = len({c.host for c in checks})
    print(f"probe: {len(checks)} checks on {hosts} host{'s' * (hosts != 1)} (timeout {timeout:g}s, "
          f"{retries} retr{'y' if retries == 1 else 'ies'})", file=sys.stderr, flush=True)
    results = asyncio.run(run_checks(checks, timeout=timeout, retries=retries,
                                     progress=lambda r: print(progress_line(r), file=sys.stderr, flush=True)))
    for result in results:
        result.region = servers.region_of(result.check.host, result.facts.get("relayed_address"))
    if args.json:
        print(json.dumps(as_json(results), indent=2))
    else:
        print(table(results))
        print(summary(results))
    if not all(r.ok for r in results):
        return fail(failure_line(results), 1)
    return 0
