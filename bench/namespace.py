"""Run a bench's measuring half inside a network namespace of its own, and its command line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable


def measure_inside(script: str, prefix: str, inner: list[str], budget: float,
                   addresses: Iterable[str] = ()) -> dict | int:
    """Run `script --inside --workdir=DIR *inner` in a new namespace (loopback up, holding
    `addresses`), deleted by name afterwards; return the JSON its last line prints, or its
    exit code when it failed. Bounded by `budget` seconds."""
    ns = f"{prefix}-{os.getpid()}"
    workdir = Path(f"/tmp/{ns}")
    workdir.mkdir()
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        n = ["ip", "-n", ns]
        subprocess.run([*n, "link", "set", "lo", "up"], check=True, timeout=10)
        for address in addresses:
            subprocess.run([*n, "addr", "add", f"{address}/32", "dev", "lo"], check=True, timeout=10)
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, script, *inner, "--inside",
                               f"--workdir={workdir}"], stdout=subprocess.PIPE, text=True, timeout=budget)
        if done.returncode != 0:
            return done.returncode
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)


def bench_main(p: argparse.ArgumentParser, argv: list[str] | None, script: str, prefix: str,
               measure: Callable[[argparse.Namespace], dict], report: Callable[[dict, argparse.Namespace], str],
               inner: Callable[[argparse.Namespace], list[str]], budget: Callable[[argparse.Namespace], float],
               addresses: Iterable[str] = ()) -> int:
    """The bench's command: as root, measure inside a namespace (`script --inside`), then
    print the report (and the raw tallies to --json)."""
    p.add_argument("--json", help="also write the raw tallies here")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inside:
        print(json.dumps(measure(args)))
        return 0
    if os.geteuid() != 0:
        p.error("needs root (it creates a network namespace)")
    results = measure_inside(script, prefix, inner(args), budget(args), addresses)
    if isinstance(results, int):
        return results
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(report(results, args))
    return 0
