#!/usr/bin/env python3
"""What `stun-infra plan` costs for several regions: the whole program on Pulumi's mock
engine, as `plan` runs it, for 3 regions x 25 static instances (goal: under 10 s on this
machine, for the command as a user runs it), beside one region's dev and prod stacks for scale.

    .venv/bin/python bench/plan_time.py [--runs 3] [--json FILE]

Each case runs `--runs` times in this process after one warm-up run of the dev stack
(imports, the zone snapshot); then the goal case runs `--runs` times as the command itself
(`stun-infra plan` in a new process: start-up, imports and printing included). Medians count.
Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THREE = '["eu-west-3", "us-east-1", "ap-southeast-1"]'
DNS = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}
CASES = {
    "dev (1 region, 2 static)": ("dev", {}),
    "prod (1 region, autoscale)": ("prod", {}),
    "3 regions x 25 static": ("dev", {"regions": THREE, "instanceCount": "25"}),
    "3 regions x 25 static, latency DNS": ("dev", {"regions": THREE, "instanceCount": "25", **DNS}),
    "3 regions x 10 static, accelerator": ("dev", {"regions": THREE, "instanceCount": "10",
                                                   "globalAccelerator": "true"}),
}
GOAL_SECONDS = 10.0
GOAL_CASE = "3 regions x 25 static"


def timed(stack: str, overrides: dict[str, str]) -> tuple[float, int]:
    from stun_infra.cloud.offline import run_offline, stack_config

    config, secret_keys = stack_config(stack, overrides)
    start = time.perf_counter()
    run = run_offline(config, stack=stack, secret_keys=secret_keys)
    return time.perf_counter() - start, sum(1 for r in run.registrations if r.custom)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    timed("dev", {})  # warm-up: imports and the zone snapshot, as a first `plan` pays them
    results = {}
    for name, (stack, overrides) in CASES.items():
        seconds = [timed(stack, overrides) for _ in range(args.runs)]
        median = statistics.median(s for s, _ in seconds)
        resources = seconds[0][1]
        results[name] = {"median_s": round(median, 2), "runs_s": [round(s, 2) for s, _ in seconds],
                         "resources": resources, "ms_per_resource": round(1000 * median / resources, 1)}
        print(f"{name:<38} {median:6.2f} s  {resources:5d} resources  "
              f"{1000 * median / resources:5.1f} ms/resource  runs {results[name]['runs_s']}")
    command = [str(Path(sys.executable).parent / "stun-infra"), "plan",
               *(f"--set={k}={v}" for k, v in CASES[GOAL_CASE][1].items())]
    walls = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=120, cwd=ROOT)
        walls.append(time.perf_counter() - start)
    results["command: " + GOAL_CASE] = {"median_s": round(statistics.median(walls), 2),
                                        "runs_s": [round(w, 2) for w in walls]}
    print(f"{'command: ' + GOAL_CASE:<38} {statistics.median(walls):6.2f} s  runs {[round(w, 2) for w in walls]}")
    met = results["command: " + GOAL_CASE]["median_s"] < GOAL_SECONDS
    print(f"goal: {GOAL_CASE} under {GOAL_SECONDS:.0f} s: {'met' if met else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
