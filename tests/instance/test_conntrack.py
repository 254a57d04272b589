"""The connection-tracking table is sized at boot for the flows the instance type is promised
(stun_infra/instance/conntrack.py): the kernel's own default on the 2 and 4 GiB types the
sizing table suggests is 65,536 entries, which new STUN clients (one entry each for 30 s)
fill at ~2,200 a second while coturn answers ~140,000 a second per vCPU."""

from __future__ import annotations

import pytest

from stun_infra.instance import conntrack, stages
from stun_infra.instance.conntrack import kernel_default, table_size

from tests.conftest import configure_script, instance_files


def sysctl_values(text: str) -> dict[str, int]:
    return {k.strip(): int(v) for k, v in (line.split("=") for line in text.splitlines()
                                           if line.strip() and not line.startswith("#"))}


@pytest.mark.parametrize("memory_mib, default", [(512, 4096), (1024, 8192), (2048, 65_536), (4096, 65_536),
                                                  (8192, 262_144), (131_072, 262_144)])
def test_the_kernels_default_is_65536_entries_from_1_to_4_gib_and_262144_above(memory_mib, default):
    assert kernel_default(memory_mib) == default


def test_the_aws_data_knows_the_memory_and_vcpus_of_the_suggested_types():
    types = conntrack.instance_types()
    assert types["t4g.small"] == (2048, 2) and types["c6gn.medium"] == (2048, 1)
    assert types["c6gn.large"] == (4096, 2) and types["c6gn.xlarge"] == (8192, 4)


def test_the_promised_flows_are_new_binding_sockets_for_30_s_and_relayed_sessions_flows():
    per_vcpu_bindings = 1_000_000 // 7 * 30  # ~7 us per binding, each from a new socket, 30 s each
    per_vcpu_sessions = 510 * 4 * 2  # audio sessions per vCPU, a client and three peer flows, with the ended ones
    assert conntrack.entries_needed(1) == per_vcpu_bindings + per_vcpu_sessions
    assert conntrack.entries_needed(4) == 4 * (per_vcpu_bindings + per_vcpu_sessions)


@pytest.mark.parametrize("instance_type", ["t4g.small", "t3.small", "c6gn.medium", "c6gn.large", "c7i.large",
                                           "c6gn.xlarge"])
def test_the_table_takes_an_eighth_of_memory_when_the_promised_flows_need_more(instance_type):
    size = table_size(instance_type)
    eighth = size.memory_mib * 1024 * 1024 // 8
    assert size.needed > eighth // conntrack.ENTRY_BYTES
    assert eighth - conntrack.GRANULE * conntrack.ENTRY_BYTES < size.entries * conntrack.ENTRY_BYTES <= eighth
    assert size.entries % 1024 == 0


def test_a_two_gib_instance_holds_twelve_times_the_kernels_table():
    size = table_size("t4g.small")
    assert (size.kernel_default, size.entries) == (65_536, 818_176)
    assert (size.kernel_default // 30, size.new_flows_per_second) == (2_184, 27_272)


def test_no_instance_type_gets_a_table_larger_than_the_kernel_allocates():
    """The largest types (e.g. 48xlarge, u7i) would otherwise ask for more than INT_MAX bytes of
    buckets, which the kernel refuses, failing systemd-sysctl and the boot."""
    largest = max(table_size(name).entries for name in conntrack.instance_types())
    assert largest == conntrack.KERNEL_MAX_ENTRIES and largest * 8 <= 2**31 - 1


def test_the_table_is_never_smaller_than_the_kernels_default(monkeypatch):
    monkeypatch.setattr(conntrack, "MEMORY_SHARE", 10_000)
    size = table_size("c6gn.xlarge")
    assert size.entries == size.kernel_default == 262_144


def test_the_needed_entries_are_set_when_memory_allows(monkeypatch):
    monkeypatch.setattr(conntrack, "BINDING_FLOWS_PER_VCPU", 100)
    size = table_size("c6gn.xlarge")
    assert size.needed == 4 * (100 * 30 + 510 * 4 * 2) < size.kernel_default
    monkeypatch.setattr(conntrack, "BINDING_FLOWS_PER_VCPU", 20_000)
    size = table_size("c6gn.xlarge")
    assert size.entries == size.needed // 1024 * 1024 and size.kernel_default < size.entries < conntrack.memory_bound(8192)


def test_the_instance_loads_conntrack_at_boot_and_systemd_sets_both_keys_to_the_size():
    files = instance_files(instanceType="c6gn.large")
    size = table_size("c6gn.large")
    assert [line for line in files[conntrack.MODULES_LOAD_PATH].splitlines() if not line.startswith("#")] == [
        "nf_conntrack"]
    assert sysctl_values(files[conntrack.SYSCTL_PATH]) == {"net.netfilter.nf_conntrack_buckets": size.entries,
                                                           "net.netfilter.nf_conntrack_max": size.entries}
    assert conntrack.MODULES_LOAD_PATH.startswith("/usr/lib/modules-load.d/")
    assert conntrack.SYSCTL_PATH.startswith("/usr/lib/sysctl.d/") and conntrack.SYSCTL_PATH.endswith(".conf")


def test_the_first_boot_applies_it_with_the_units_that_apply_it_at_every_boot():
    script = configure_script(instanceType="c6gn.large")
    assert "systemctl restart systemd-modules-load.service systemd-sysctl.service\n" in script
    names = [s.__module__ for s in stages.STAGES]
    assert names.index(conntrack.__name__) < names.index("stun_infra.instance.drain")


def test_an_instance_type_aws_data_here_does_not_know_keeps_the_kernels_defaults(monkeypatch):
    monkeypatch.setattr(conntrack, "instance_types", lambda: {})
    assert table_size("c6gn.large") is None
    assert conntrack.SYSCTL_PATH not in instance_files(instanceType="c6gn.large")


def test_the_readmes_table_is_what_the_computation_sets():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for instance_type in ("t4g.small", "c6gn.medium", "c6gn.large", "c6gn.xlarge"):
        s = table_size(instance_type)
        row = (f"| `{instance_type}` | {s.memory_mib // 1024} GiB, {s.vcpus} | {s.kernel_default:,} "
               f"({s.kernel_default // 30:,}/s) | {s.needed:,} | {s.entries:,} ({s.new_flows_per_second:,}/s) |")
        assert row in readme, row
