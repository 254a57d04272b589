#!/usr/bin/env python3
"""What a scale-out costs in script time: a first boot (the user data: fetch, check, install
the package, then configure) against a warm start (configure only: what a stopped instance,
a warm pool's among them, runs when it starts), per architecture and per boot stage.

    sudo .venv/bin/python bench/boot_time.py [--arch amd64] [--arch arm64] [--starts 3] [--json FILE]

Runs the dev stack in the boot sandbox (tests/boot/boot_sandbox.py: a Debian 12 machine booted
by systemd-nspawn with systemd as PID 1 in a network namespace of its own, cloud-init reading
the user data from the IMDS stand-in; stand-ins for S3, Parameter Store, the mirror; its
namespace and mounts removed by name at the end): one launch, then `--starts` power-off and
start cycles, whose stun-infra-configure.service is the warm start. Script time is what the
instance spends in our scripts: the first boot's is cloud-init's scripts-user module (the user
data, start to end), a warm start's the configure unit's run (systemd's start and exit
stamps). The OS boot is reported beside it (power on to cloud-init done); the EC2 launch and
AWS's own steps are not in it: README's scale-out timeline puts them beside it. arm64 runs under qemu-user
here: its figures are emulation's, not a Graviton's. Goals: a warm start within
3 s on x86_64, and under a seventh of the first boot in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "boot")]

import boot_sandbox as sb  # noqa: E402

INSTANCE_TYPES = {"amd64": "t3.small", "arm64": "t4g.small"}
WARM_GOAL_SECONDS = 3.0
WARM_GOAL_FRACTION = 1 / 7


def measure(arch: str, starts: int) -> dict:
    from stun_infra.cloud.offline import stack_settings
    from stun_infra.instance.package import DEPENDS
    from stun_infra.instance.services import CONFIGURE_UNIT

    settings = stack_settings("dev", {"instanceType": INSTANCE_TYPES[arch]})
    cache = sb.ensure_rootfs(DEPENDS, arch)
    instance = sb.Instance.of(settings)
    with tempfile.TemporaryDirectory(prefix="stun-boot-bench-") as tmp:
        with sb.seeded_sandbox(cache, Path(tmp), settings, instance) as (box, boot, _):
            first = box.boot(box.user_data(settings, boot))
            if first.status != "done" or first.failed_units:
                raise SystemExit(f"{arch}: the first boot failed:\n{first.summary()}")
            boot_log = box.root / "var/log/stun-infra-boot.log"
            warm = []
            for _ in range(starts):
                box.power_off()
                seen = len(boot_log.read_text())
                start = box.start()
                if start.status != "done" or start.failed_units:
                    raise SystemExit(f"{arch}: a warm start failed:\n{start.summary()}")
                warm.append({"seconds": box.unit_seconds(CONFIGURE_UNIT), "boot_seconds": start.seconds,
                             "stages": sb.stage_timings(boot_log.read_text()[seen:])})
    return {"first": {"seconds": first.script_seconds, "boot_seconds": first.seconds, "stages": first.stages},
            "warm": warm}


def report(results: dict[str, dict]) -> str:
    lines = []
    for arch, r in results.items():
        first, warm = r["first"], r["warm"]
        median = statistics.median(w["seconds"] for w in warm)
        install = first["seconds"] - sum(first["stages"].values())
        power_on = statistics.median(w["boot_seconds"] for w in warm)
        lines += [f"{arch}: first boot {first['seconds']:.1f} s (user data: fetch, check, install {install:.1f} s), "
                  f"warm start median {median:.2f} s of {len(warm)} ({median / first['seconds']:.1%} of the first boot)",
                  f"  power on to cloud-init done: first boot {first['boot_seconds']:.1f} s, warm start median "
                  f"{power_on:.1f} s",
                  f"  {'stage':<18} {'first boot':>10} {'warm (median)':>14}"]
        for stage in first["stages"]:
            warm_stage = statistics.median(w["stages"].get(stage, 0.0) for w in warm)
            lines.append(f"  {stage:<18} {first['stages'][stage]:>10.2f} {warm_stage:>14.2f}")
        goals = [median < first["seconds"] * WARM_GOAL_FRACTION]
        if arch == "amd64":
            goals.append(median <= WARM_GOAL_SECONDS)
        lines.append(f"  goal ({'<= 3 s and ' if arch == 'amd64' else ''}under 1/7 of the first boot): "
                     f"{'met' if all(goals) else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", choices=sorted(INSTANCE_TYPES),
                   help="Debian architecture to boot (repeatable; default: this machine's)")
    p.add_argument("--starts", type=int, default=3, help="warm starts after the first boot (default 3)")
    p.add_argument("--json", help="also write the raw timings here")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        p.error("needs root (the boot sandbox mounts an overlay and creates a network namespace)")
    if not 1 <= args.starts <= 20:
        p.error("--starts: from 1 to 20")
    os.environ.setdefault("STUN_INFRA_CACHE", "/var/cache/stun-infra/boot")
    results = {arch: measure(arch, args.starts) for arch in args.arch or [sb.host_arch()]}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
