"""The URN contract: the URNs each example stack and mode produces, checked in.

A URN that changes is a resource that every deployed stack replaces (or orphans). The
lists under urns/ are compared by tests/cloud/test_urns.py; changing one is a deliberate
act: give a renamed resource `aliases` so nothing is replaced, add a line to the README's
changelog, then rewrite the lists with `.venv/bin/python -m tests.cloud.urns`.
"""

from __future__ import annotations

from pathlib import Path

from stun_infra.cloud.offline import run_offline, stack_config

URNS_DIR = Path(__file__).resolve().parent / "urns"
DNS = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}
REGIONS = '["eu-west-3", "us-east-1", "ap-southeast-1"]'

# case name -> (example stack file, overrides on top of it)
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "dev-static": ("dev", {}),
    "dev-autoscale": ("dev", {"mode": "autoscale"}),
    "dev-stun-only": ("dev", {"turn": "false"}),
    "dev-static-dns": ("dev", DNS),
    "prod-autoscale": ("prod", {}),
    "prod-autoscale-dns": ("prod", DNS),
    "prod-warm-pool": ("prod", {"warmPool": "Stopped"}),
    # The off switch: with stun-infra:ipv6 false the URNs are the IPv4-only stack's, unchanged.
    "dev-static-ipv4": ("dev", {"ipv6": "false"}),
    "dev-autoscale-ipv4": ("dev", {"mode": "autoscale", "ipv6": "false"}),
    "dev-stun-only-ipv4": ("dev", {"turn": "false", "ipv6": "false"}),
    "dev-static-dns-ipv4": ("dev", {**DNS, "ipv6": "false"}),
    # Several regions: the added regions' groups, providers and names, the global entry.
    "dev-regions-dns": ("dev", {"regions": REGIONS, **DNS}),
    "prod-regions-accelerator": ("prod", {"regions": REGIONS, "globalAccelerator": "true", "ipv6": "false"}),
}
ONE_REGION = [case for case, (_, overrides) in CASES.items() if "regions" not in overrides]


def urns(case: str) -> list[str]:
    stack, overrides = CASES[case]
    config, secret_keys = stack_config(stack, overrides)
    run = run_offline(config, stack=stack, secret_keys=secret_keys)
    return sorted(r.urn for r in run.registrations)


def path_of(case: str) -> Path:
    return URNS_DIR / f"{case}.txt"


def write_all() -> None:
    for case in CASES:
        path_of(case).write_text("".join(f"{urn}\n" for urn in urns(case)))
        print(f"wrote {path_of(case)}")


if __name__ == "__main__":
    write_all()
