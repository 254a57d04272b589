#!/usr/bin/env python3
"""What a STUN binding costs coturn 4.6.1 in log bytes and CPU, per config, A/B alternated.

    sudo .venv/bin/python bench/binding_cost.py [--rounds 6] [--bindings 100000]

Runs, in a network namespace it creates (loopback only) and deletes by name at the end:
- rendered: exactly the config stun_infra.instance.coturn renders (bindings are never logged);
- verbose:  rendered + `verbose` (what coturn 4.6.1 needs to log allocation events);
- original: rendered + `verbose` + `log-binding`, the original design (a line per binding).
Each config runs in its own turnserver on its own loopback address. Every round sends
the same number of binding requests to each server in turn (the order alternates every
round), from `--sockets` client sockets (each socket is one client 5-tuple), and reads
the server's log size and CPU time (utime+stime of /proc/PID/stat) before and after.
coturn closes an idle binding-only session about 60 s after its last packet and, with
`verbose`, logs 3 lines when it does; the bench waits `--settle` seconds after the last
round to count those too. Prints a table and the CloudWatch Logs ingestion each config
would cost at 10,000 bindings/s ($0.50 per GB ingested, 30-day month).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.namespace import bench_main  # noqa: E402
from bench.stun_load import bindings, exchange  # noqa: E402
from stun_infra.instance.coturn import local_paths, turnserver_conf  # noqa: E402
from stun_infra.settings import load_settings  # noqa: E402

CONFIGS = {  # name -> (listening address, lines added to the rendered config)
    "rendered": ("127.0.0.1", ()),
    "verbose": ("127.0.0.2", ("verbose",)),
    "original": ("127.0.0.3", ("verbose", "log-binding")),
}
PUBLIC_IP = "203.0.113.10"
PRICE_PER_GB = 0.50
PROJECTED_RATE = 10_000  # bindings per second
MONTH_SECONDS = 30 * 86400
STARTUP_DEADLINE = 15.0


@dataclass
class Tally:
    sent: int = 0
    successes: int = 0
    cpu_ticks: int = 0
    log_bytes: int = 0
    seconds: float = 0.0
    late_log_bytes: int = 0  # written after the last round (idle sessions closed)
    binding_line_bytes: int = 0  # lines about one binding ("BINDING processed"), from start to end
    session_line_bytes: int = 0  # every other line after startup: per client session (usage, closed, ...)
    rates: list[float] = field(default_factory=list)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def start_server(name: str, workdir: Path) -> tuple[subprocess.Popen, Path]:
    address, extra = CONFIGS[name]
    d = workdir / name
    d.mkdir()
    settings = load_settings({"relayMinPort": 50000, "relayMaxPort": 50099}, stack="bench", region="eu-west-3")
    paths = local_paths(d)
    conf = turnserver_conf(settings, public_ip=PUBLIC_IP, private_ip=address, turn_secret=secrets.token_hex(16),
                           paths=paths) + "".join(f"{line}\n" for line in extra)
    (d / "turnserver.conf").write_text(conf)
    proc = subprocess.Popen(["turnserver", "-c", str(d / "turnserver.conf"), "--pidfile", str(d / "pid"),
                             "--db", str(d / "turndb")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name}: turnserver exited with {proc.returncode}")
        if exchange((address, settings.stun_port), bindings(1), answer_timeout=0.2, deadline=1).successes:
            return proc, Path(paths.log_file)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: turnserver did not answer within {STARTUP_DEADLINE}s")


def measure(args: argparse.Namespace) -> dict:
    """Inside the namespace: start the servers, alternate the rounds, return the tallies."""
    workdir = Path(args.workdir)
    servers: dict[str, tuple[subprocess.Popen, Path]] = {}
    tallies = {name: Tally() for name in CONFIGS}
    try:
        for name in CONFIGS:
            servers[name] = start_server(name, workdir)
        time.sleep(1.0)  # let the startup lines land
        offsets = {name: log.stat().st_size for name, (_, log) in servers.items()}
        order = list(CONFIGS)
        for r in range(args.rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                proc, log = servers[name]
                t = tallies[name]
                size, ticks = log.stat().st_size, cpu_ticks(proc.pid)
                res = exchange((CONFIGS[name][0], 3478), bindings(args.bindings), sockets=args.sockets,
                               window=args.window, deadline=args.round_deadline)
                time.sleep(0.2)  # let coturn finish writing what it logs
                t.cpu_ticks += cpu_ticks(proc.pid) - ticks
                t.log_bytes += log.stat().st_size - size
                t.sent += res.sent
                t.successes += res.successes
                t.seconds += res.elapsed
                t.rates.append(res.successes / res.elapsed if res.elapsed else 0.0)
                print(f"round {r + 1} {name:9s} {res.successes}/{res.sent} answered in {res.elapsed:.2f}s",
                      file=sys.stderr, flush=True)
        sizes = {name: log.stat().st_size for name, (_, log) in servers.items()}
        print(f"waiting {args.settle:.0f}s for coturn to close the idle binding sessions", file=sys.stderr, flush=True)
        time.sleep(args.settle)
        for name, (proc, log) in servers.items():
            tallies[name].late_log_bytes = log.stat().st_size - sizes[name]
            assert proc.poll() is None, f"{name} died"
            with log.open("rb") as f:
                f.seek(offsets[name])
                for line in f:
                    if b"BINDING processed" in line:
                        tallies[name].binding_line_bytes += len(line)
                    else:
                        tallies[name].session_line_bytes += len(line)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    return {name: t.__dict__ for name, t in tallies.items()}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    coturn = subprocess.run(["turnserver", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return (f"{model}, {os.cpu_count()} vCPU, Linux {platform.release()}, coturn {coturn}, "
            f"Python {platform.python_version()} client")


def report(results: dict, args: argparse.Namespace) -> str:
    hz = os.sysconf("SC_CLK_TCK")
    clients = args.rounds * args.sockets + 1  # + the startup probe's socket
    k = args.bindings_per_client
    lines = [
        f"machine: {machine()}",
        f"{args.rounds} rounds x {args.bindings:,} bindings per config, {args.sockets} client sockets per round "
        f"({clients} client 5-tuples per config with the startup probe), order alternated every round; "
        f"{args.settle:.0f}s settle after the last round",
        "",
        "| config | log B per binding | log B per client 5-tuple | "
        f"log B/binding at {k:g} bindings/client | coturn CPU µs/binding | bindings/s (median round) | loss | "
        "CloudWatch Logs at 10k bindings/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in results.items():
        per_binding = t["binding_line_bytes"] / t["sent"]
        per_client = t["session_line_bytes"] / clients
        projected = per_binding + per_client / k
        cpu_us = t["cpu_ticks"] / hz * 1e6 / t["successes"]
        rate = sorted(t["rates"])[len(t["rates"]) // 2]
        loss = 1 - t["successes"] / t["sent"]
        gb_month = projected * PROJECTED_RATE * MONTH_SECONDS / 1e9
        lines.append(f"| {name} | {per_binding:.1f} | {per_client:.0f} | {projected:.1f} | {cpu_us:.2f} | "
                     f"{rate:,.0f} | {loss:.3%} | {gb_month:,.0f} GB = ${gb_month * PRICE_PER_GB:,.0f}/month |")
    total = {name: t["log_bytes"] + t["late_log_bytes"] for name, t in results.items()}
    lines += ["", "log bytes written after startup: " + ", ".join(f"{n} {b:,}" for n, b in total.items())]
    lines += ["", f"CPU resolution: 1 tick = {1e6 / hz:.0f} µs over "
              f"{args.rounds * args.bindings} bindings per config."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--bindings", type=int, default=100_000, help="per config per round")
    p.add_argument("--sockets", type=int, default=16, help="client sockets (5-tuples) per round")
    p.add_argument("--window", type=int, default=32, help="requests in flight per socket")
    p.add_argument("--round-deadline", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=90.0, help="seconds to wait for idle-session close lines")
    p.add_argument("--bindings-per-client", type=float, default=2.0,
                   help="for the projection: bindings a real client sends from one 5-tuple")
    return bench_main(
        p, argv, __file__, "stun-bench", measure, report,
        inner=lambda a: [f"--{k.replace('_', '-')}={getattr(a, k)}" for k in
                         ("rounds", "bindings", "sockets", "window", "round_deadline", "settle")],
        budget=lambda a: a.rounds * len(CONFIGS) * (a.round_deadline + 5) + a.settle + 120)


if __name__ == "__main__":
    sys.exit(main())
