"""The kernel's connection-tracking table, sized for the flows an instance is promised to carry.

Every flow to and from coturn is tracked from boot (the drain tells established flows from
new ones: stun_infra.instance.drain): one table entry per UDP 5-tuple. When the table is full
the kernel drops the first packet of every new flow ("nf_conntrack: table full, dropping
packet"): new clients get no answer while the instance is far from busy.

Debian 12's kernel (6.1), Documentation/networking/nf_conntrack-sysctl.rst and
net/netfilter/nf_conntrack_core.c:
- nf_conntrack_buckets (the hash size) defaults to memory / 16384 / 8 bytes per bucket, at
  least 1,024; 65,536 on a machine over 1 GiB, 262,144 over 4 GiB; nf_conntrack_max to the
  same number (KERNEL_DEFAULT): 65,536 entries on the 2 and 4 GiB types the sizing table suggests;
- nf_conntrack_udp_timeout, 30 s: a flow seen one way, or one request and its answer within
  2 s (a STUN binding from a new socket) lives 30 s after its last packet;
- nf_conntrack_udp_timeout_stream, 120 s: a flow still active after 2 s (a TURN client's, a
  relayed peer's) lives 120 s after its last packet.

What one instance is promised (README, "Sizing" and "Scaling policy"): ~7 us of CPU per STUN
binding, so up to 1/7 us bindings a second per vCPU, each from a new socket in the worst case
(a crowd of new clients, or a flood): BINDING_FLOWS_PER_VCPU x 30 s entries; and
SESSIONS_PER_VCPU relayed sessions, each a client flow and a few peer flows (ICE checks the
peer's candidates), kept 120 s after they end. The first term dominates by far: no instance
has the memory for all of it, so the table takes MEMORY_SHARE of the instance's memory at most
(ENTRY_BYTES a tracked flow, a bucket per entry as the kernel's default), never less than the
kernel's default. An instance type missing from AWS's data here keeps the kernel's defaults.

Set at every boot by systemd: systemd-modules-load loads nf_conntrack (so its keys exist),
then systemd-sysctl (ordered after it) writes both keys; the stage's script runs the two
services once more on the boot that installs the package. Both keys are writable in the
initial network namespace only.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

INSTANCE_TYPES_FILE = Path(__file__).resolve().parents[1] / "data" / "instance_types.json.gz"
MODULE = "nf_conntrack"
MODULES_LOAD_PATH = "/usr/lib/modules-load.d/stun-infra-conntrack.conf"
SYSCTL_PATH = "/usr/lib/sysctl.d/60-stun-infra-conntrack.conf"
APPLYING_UNITS = ("systemd-modules-load.service", "systemd-sysctl.service")

UDP_TIMEOUT_SECONDS = 30          # nf_conntrack_udp_timeout
BINDING_CPU_MICROSECONDS = 7      # coturn's CPU per STUN binding, measured (README "Scaling policy")
BINDING_FLOWS_PER_VCPU = 1_000_000 // BINDING_CPU_MICROSECONDS
SESSIONS_PER_VCPU = 510           # relayed audio sessions per vCPU at 60% CPU (README "Sizing")
FLOWS_PER_SESSION = 4             # the client's, and the peer's host, server-reflexive and relayed candidates
SESSION_TAIL = 2                  # a session's flows outlive it by 120 s: room for the ended ones beside the live
MEMORY_SHARE = 8                  # the table takes at most 1/8 of the instance's memory
ENTRY_BYTES = 320 + 8             # a tracked flow (struct nf_conn, its slab object) and its hash bucket
GRANULE = 1024                    # sizes are whole multiples of this
# The largest hash the kernel allocates: nf_ct_alloc_hashtable refuses more than INT_MAX bytes of
# 8-byte buckets (the write then fails with ENOMEM, systemd-sysctl.service fails, and so does the
# boot that applies it); nf_conntrack_max, an int, is far above this.
KERNEL_MAX_ENTRIES = (2**31 - 1) // 8 // GRANULE * GRANULE


@dataclass(frozen=True)
class TableSize:
    """The table for one instance type: `entries` (nf_conntrack_max and the hash's buckets),
    what its promised flows would need, and what the kernel would have set."""

    instance_type: str
    memory_mib: int
    vcpus: int
    needed: int
    entries: int
    kernel_default: int

    @property
    def new_flows_per_second(self) -> int:
        """Short flows (bindings from new sockets) a second it holds before it is full."""
        return self.entries // UDP_TIMEOUT_SECONDS


@cache
def instance_types() -> dict[str, tuple[int, int]]:
    """Instance type -> (memory MiB, default vCPUs), AWS's DescribeInstanceTypes (the vendored snapshot)."""
    data = json.loads(gzip.decompress(INSTANCE_TYPES_FILE.read_bytes()))
    return {name: (memory, vcpus) for name, (memory, vcpus) in data["types"].items()}


def kernel_default(memory_mib: int) -> int:
    """nf_conntrack_max (= buckets) as Linux 6.1 sets it for this much memory."""
    if memory_mib > 4 * 1024:
        return 262_144
    if memory_mib > 1024:
        return 65_536
    return max(1024, memory_mib * 1024 * 1024 // 16384 // 8)


def entries_needed(vcpus: int) -> int:
    """Entries the promised flows hold at once: bindings from new sockets for 30 s each, and the
    relayed sessions' flows with the tail of the ended ones."""
    bindings = vcpus * BINDING_FLOWS_PER_VCPU * UDP_TIMEOUT_SECONDS
    sessions = vcpus * SESSIONS_PER_VCPU * FLOWS_PER_SESSION * SESSION_TAIL
    return bindings + sessions


def memory_bound(memory_mib: int) -> int:
    return memory_mib * 1024 * 1024 // MEMORY_SHARE // ENTRY_BYTES


def table_size(instance_type: str) -> TableSize | None:
    """The table for `instance_type`; None when AWS's data here does not know it."""
    known = instance_types().get(instance_type)
    if known is None:
        return None
    memory_mib, vcpus = known
    needed, default = entries_needed(vcpus), kernel_default(memory_mib)
    entries = max(default, min(needed, memory_bound(memory_mib), KERNEL_MAX_ENTRIES) // GRANULE * GRANULE)
    return TableSize(instance_type, memory_mib, vcpus, needed, entries, default)


def stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    """The module loaded at boot and both keys set by systemd; applied now on the first boot."""
    size = table_size(settings.instance_type)
    if size is None:
        return None
    return Stage("conntrack",
                 files=(InstanceFile(MODULES_LOAD_PATH, render("stun-conntrack.modules-load.conf.j2", module=MODULE)),
                        InstanceFile(SYSCTL_PATH, render("stun-conntrack.sysctl.conf.j2", size=size,
                                                         udp_timeout=UDP_TIMEOUT_SECONDS))),
                 script=f"systemctl restart {' '.join(APPLYING_UNITS)}\n")
