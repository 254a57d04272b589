#!/usr/bin/env python3
"""What one unauthenticated client can make coturn 4.6.1 write to its log, before and after the
per-source limit (stun_infra/instance/flood_limits.py), and how long it takes to fill a disk.

    sudo .venv/bin/python bench/log_flood.py [--seconds 10] [--username-bytes 500] [--disk-gib 8]

In a network namespace it creates (loopback only), deleted by name at the end: coturn with
exactly the rendered config (`simple-log`, no `verbose`) on 127.0.0.1, and one client UDP
socket. The client takes a nonce (one Allocate, answered 401), then sends Allocate requests
carrying a username coturn cannot authenticate (an expired REST credential, `1:aaa...`),
REALM, that nonce and a MESSAGE-INTEGRITY, as fast as coturn answers (a window in flight):
coturn logs `ERROR: check_stun_auth: Cannot find credentials of user <...>` for each, with no
`verbose`. Round "before": coturn alone. Round "after": the instance's nftables ruleset
(binding_counters.nft_ruleset, which carries the limit) loaded first. Reported: requests
sent, log bytes per request sent, log bytes per second, and the time to write `--disk-gib`
GiB at that rate (a root volume that held nothing else: an upper bound). Log rotation by
size (also in the package) bounds what stays on disk whatever the rate; this measures the
rate itself. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.namespace import bench_main  # noqa: E402
from bench.stun_load import HEADER, MAGIC_COOKIE, attribute  # noqa: E402

ALLOCATE = 0x0003
REQUESTED_TRANSPORT_UDP = attribute(0x0019, b"\x11\0\0\0")
USERNAME, REALM, NONCE, MESSAGE_INTEGRITY, ERROR_CODE = 0x0006, 0x0014, 0x0015, 0x0008, 0x0009
GIB = 1024 ** 3


def attributes(message: bytes) -> dict[int, bytes]:
    found, i = {}, HEADER.size
    while i + 4 <= len(message):
        kind, length = struct.unpack_from("!HH", message, i)
        found[kind] = message[i + 4:i + 4 + length]
        i += 4 + length + (-length % 4)
    return found


def challenge() -> bytes:
    """An Allocate without credentials: coturn answers 401 with its realm and a nonce."""
    return HEADER.pack(ALLOCATE, len(REQUESTED_TRANSPORT_UDP), MAGIC_COOKIE, os.urandom(12)) + REQUESTED_TRANSPORT_UDP


def refused_allocate(username: bytes, realm: bytes, nonce: bytes) -> bytes:
    """An Allocate with credentials coturn cannot check (any key: it never finds the user's)."""
    body = (REQUESTED_TRANSPORT_UDP + attribute(USERNAME, username) + attribute(REALM, realm)
            + attribute(NONCE, nonce))
    header = HEADER.pack(ALLOCATE, len(body) + 24, MAGIC_COOKIE, os.urandom(12))
    return header + body + attribute(MESSAGE_INTEGRITY, hmac.new(b"k" * 16, header + body, hashlib.sha1).digest())


@dataclass
class Flood:
    sent: int = 0
    answered: int = 0
    elapsed: float = 0.0


def flood(server: tuple[str, int], username: bytes, *, count: int, seconds: float, window: int = 32) -> Flood:
    """From one socket (one 5-tuple: its nonce stays valid): `count` refused Allocates, or as
    many as `seconds` allow. A window not answered within 0.2 s is given up (dropped)."""
    result = Flood()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.connect(server)
        sock.send(challenge())
        answer = attributes(sock.recv(2048))
        realm, nonce = answer[REALM], answer[NONCE]
        sock.setblocking(False)
        start = time.monotonic()
        in_flight = 0
        while result.sent < count and time.monotonic() - start < seconds:
            while in_flight < window and result.sent < count:
                sock.send(refused_allocate(username, realm, nonce))
                result.sent += 1
                in_flight += 1
            if not select.select([sock], [], [], 0.2)[0]:
                in_flight = 0
                continue
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                result.answered += 1
                in_flight -= 1
        result.elapsed = time.monotonic() - start
    return result


def measure(args: argparse.Namespace) -> dict:
    """Inside the namespace: coturn, a round without the ruleset, then one with it."""
    import subprocess
    from bench.binding_cost import start_server
    from stun_infra.instance.binding_counters import nft_ruleset
    from stun_infra.settings import load_settings
    workdir = Path(args.workdir)
    proc, log = start_server("rendered", workdir)
    username = b"1:" + b"a" * (args.username_bytes - 2)
    rounds = {}
    try:
        for name in ("before", "after"):
            if name == "after":
                ruleset = workdir / "stun-counters.nft"
                ruleset.write_text(nft_ruleset(load_settings({"relayMinPort": 50000, "relayMaxPort": 50099},
                                                             stack="bench", region="eu-west-3")))
                subprocess.run(["nft", "-f", str(ruleset)], check=True, timeout=10)
            size = log.stat().st_size
            done = flood(("127.0.0.1", 3478), username, count=10 ** 9, seconds=args.seconds)
            time.sleep(0.5)  # let coturn finish writing
            rounds[name] = {**done.__dict__, "log_bytes": log.stat().st_size - size}
            print(f"{name}: {done.sent} sent, {done.answered} answered in {done.elapsed:.1f}s", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return rounds


def report(results: dict, args: argparse.Namespace) -> str:
    disk = args.disk_gib * GIB
    lines = [f"one client socket, refused Allocates with a {args.username_bytes}-byte username, "
             f"{args.seconds:g} s per round; time to write {args.disk_gib} GiB at that rate",
             "", "| round | requests/s sent | log B per request | log B/s | GB of log per day | time to "
             f"{args.disk_gib} GiB |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        per_second = r["log_bytes"] / r["elapsed"]
        full = disk / per_second if per_second else float("inf")
        when = f"{full / 60:.0f} min" if full < 2 * 86400 else f"{full / 86400:.1f} days"
        lines.append(f"| {name} | {r['sent'] / r['elapsed']:,.0f} | {r['log_bytes'] / r['sent']:.1f} | "
                     f"{per_second:,.0f} | {per_second * 86400 / 1e9:.2f} | {when} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of each round")
    p.add_argument("--username-bytes", type=int, default=500, help="coturn echoes it in each line (at most 512)")
    p.add_argument("--disk-gib", type=float, default=8.0, help="the root volume (rootVolumeSize, default 8)")
    return bench_main(p, argv, __file__, "stun-flood", measure, report,
                      inner=lambda a: [f"--seconds={a.seconds}", f"--username-bytes={a.username_bytes}"],
                      budget=lambda a: 2 * a.seconds + 120)


if __name__ == "__main__":
    sys.exit(main())
