#!/usr/bin/env python3
"""What coturn 4.6.1 can relay with the rendered config: CPU per relayed packet, A/B
against a quiet config in the same run, turned into calls per vCPU.

    sudo .venv/bin/python bench/relay_cost.py [--rounds 4] [--sessions 100] [--seconds 10]

Runs, in a network namespace it creates and deletes by name at the end (loopback only,
holding documentation addresses):
- rendered: exactly the config stun_infra.instance.coturn renders (deny list, quotas,
  max-bps, fingerprint, REST-API auth);
- quiet:    the same without the denied-peer-ip lines and the bandwidth cap: a bare relay.
Each config runs in its own turnserver; `turnutils_peer` echoes every datagram. Every
round, for each config in turn (order reversed every other round) and each packet size
(audio: 160 B, video: 1,200 B), `turnutils_uclient` opens `--sessions` allocations, each
sending one packet every 20 ms (50 packets/s, an audio stream) over a channel to the peer
for `--seconds`; the peer echoes, so each packet is relayed twice (client->peer,
peer->client). coturn's CPU time (utime+stime of /proc/PID/stat) over the round is divided
by the packets it relayed, counted in the kernel at the peer's port (nftables counters).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.binding_cost import cpu_ticks, machine  # noqa: E402
from bench.namespace import bench_main  # noqa: E402
from stun_infra.instance.coturn import local_paths, turnserver_conf  # noqa: E402
from stun_infra.settings import load_settings  # noqa: E402

SERVERS = {"rendered": "198.51.100.1", "quiet": "198.51.100.3"}
PEER, PEER_PORT = "198.51.100.2", 3480
PUBLIC_IP = "203.0.113.10"
SIZES = {"audio": 160, "video": 1200}  # UDP payload bytes per packet
INTERVAL_MS = 20  # 50 packets/s per session, each way
STARTUP_SECONDS = 15.0
# Per-call packet rates the table is turned into (each way; one allocation per participant).
AUDIO_PPS = 50      # Opus, 20 ms frames
VIDEO_PPS = 250     # ~2.5 Mbit/s of 1,200-byte packets: 720p, plus its audio
CPU_TARGET = 0.6    # what a fleet runs at (scalingCpuTarget's default)
COUNTERS = """table inet relay_bench {
	counter to_peer {}
	counter from_peer {}
	chain input {
		type filter hook input priority filter; policy accept;
		udp dport %d counter name "to_peer"
	}
	chain output {
		type filter hook output priority filter; policy accept;
		udp sport %d counter name "from_peer"
	}
}
""" % (PEER_PORT, PEER_PORT)


def config(name: str, workdir: Path, secret: str) -> Path:
    address = SERVERS[name]
    d = workdir / name
    d.mkdir()
    settings = load_settings({"relayMinPort": 50000, "relayMaxPort": 59999, "userQuota": 0, "totalQuota": 0},
                             stack="bench", region="eu-west-3")
    conf = turnserver_conf(settings, public_ip=PUBLIC_IP, private_ip=address, turn_secret=secret,
                           paths=local_paths(d))
    if name == "quiet":
        conf = "".join(line for line in conf.splitlines(keepends=True)
                       if not line.startswith(("denied-peer-ip=", "max-bps=")))
    (d / "turnserver.conf").write_text(conf)
    return d


def relayed() -> int:
    out = subprocess.run(["nft", "-j", "list", "counters", "table", "inet", "relay_bench"], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    return sum(c["counter"]["packets"] for c in json.loads(out)["nftables"] if "counter" in c)


def measure(args: argparse.Namespace) -> dict:
    """Inside the namespace: start the peer and servers, alternate the rounds."""
    workdir = Path(args.workdir)
    secret = secrets.token_hex(16)
    procs: dict[str, subprocess.Popen] = {}
    results: dict[str, dict[str, dict[str, int]]] = {n: {s: {"ticks": 0, "packets": 0, "seconds": 0}
                                                         for s in SIZES} for n in SERVERS}
    try:
        (workdir / "counters.nft").write_text(COUNTERS)
        subprocess.run(["nft", "-f", str(workdir / "counters.nft")], check=True, timeout=10)
        procs["peer"] = subprocess.Popen(["turnutils_peer", "-L", PEER, "-p", str(PEER_PORT)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in SERVERS:
            d = config(name, workdir, secret)
            procs[name] = subprocess.Popen(["turnserver", "-c", str(d / "turnserver.conf"), "--pidfile",
                                            str(d / "pid"), "--db", str(d / "turndb")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)  # listeners up (the first round's client retries besides)
        order = list(SERVERS)
        for r in range(args.rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                for size, length in SIZES.items():
                    pid = procs[name].pid
                    assert procs[name].poll() is None, f"{name} died"
                    packets, ticks, t0 = relayed(), cpu_ticks(pid), time.monotonic()
                    subprocess.run(["turnutils_uclient", "-c", "-m", str(args.sessions),
                                    "-n", str(args.seconds * 1000 // INTERVAL_MS), "-z", str(INTERVAL_MS),
                                    "-l", str(length), "-e", PEER, "-r", str(PEER_PORT), "-W", secret,
                                    "-u", f"bench{r}", SERVERS[name]],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=args.seconds * 4 + 60)
                    t = results[name][size]
                    t["ticks"] += cpu_ticks(pid) - ticks
                    t["packets"] += relayed() - packets
                    t["seconds"] += time.monotonic() - t0
                    print(f"round {r + 1} {name:8s} {size}: {t['packets']:,} relayed so far", file=sys.stderr,
                          flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    return results


def report(results: dict, args: argparse.Namespace) -> str:
    hz = os.sysconf("SC_CLK_TCK")
    lines = [f"machine: {machine()}",
             f"{args.rounds} rounds x {args.sessions} sessions x {args.seconds} s per config and size "
             f"(50 packets/s each way per session), order alternated every round", "",
             "| config | packet | relayed packets | coturn CPU µs per relayed packet | relayed packets/s per core "
             "(100% CPU) |", "|---|---|---:|---:|---:|"]
    per_packet: dict[tuple[str, str], float] = {}
    for name, sizes in results.items():
        for size, t in sizes.items():
            us = t["ticks"] / hz * 1e6 / t["packets"] if t["packets"] else float("nan")
            per_packet[(name, size)] = us
            lines.append(f"| {name} | {size} ({SIZES[size]} B) | {t['packets']:,} | {us:.2f} | {1e6 / us:,.0f} |")
    audio, video = per_packet[("rendered", "audio")], per_packet[("rendered", "video")]
    audio_calls = CPU_TARGET * 1e6 / (audio * 2 * AUDIO_PPS)
    video_calls = CPU_TARGET * 1e6 / (video * 2 * (VIDEO_PPS + AUDIO_PPS))
    lines += ["", f"rendered vs quiet: audio {audio / per_packet[('quiet', 'audio')] - 1:+.0%}, "
                  f"video {video / per_packet[('quiet', 'video')] - 1:+.0%} CPU per relayed packet", "",
              f"relayed sessions per vCPU at {CPU_TARGET:.0%} CPU: audio ({AUDIO_PPS} packets/s each way) "
              f"{audio_calls:,.0f}; video ({VIDEO_PPS} + {AUDIO_PPS} packets/s each way) {video_calls:,.0f}",
              f"CPU resolution: 1 tick = {1e6 / hz:.0f} µs."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--sessions", type=int, default=100, help="allocations per round")
    p.add_argument("--seconds", type=int, default=10, help="each session sends this long")
    return bench_main(
        p, argv, __file__, "relay-bench", measure, report,
        inner=lambda a: [f"--rounds={a.rounds}", f"--sessions={a.sessions}", f"--seconds={a.seconds}"],
        budget=lambda a: a.rounds * len(SERVERS) * len(SIZES) * (a.seconds * 4 + 70) + 60,
        addresses=(*SERVERS.values(), PEER))


if __name__ == "__main__":
    sys.exit(main())
