"""Our nftables tables survive `nft flush ruleset` (Debian's nftables.service runs one): the
rendered guard, run by bash against the real kernel in a network namespace, loads each missing
table again from its rendered ruleset, the drain's as the drain left it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stun_infra.instance import binding_counters, drain, nft_guard, tls_ports
from stun_infra.instance.stage import UNIT_DIR

from tests.conftest import instance_files, settings
from tests.support.netns import NetNs
from tests.support.systemd import verify_units

TLS = {"tlsPorts": "[443, 5349]"}  # 443 redirected to coturn's 5349: all three tables


@pytest.fixture()
def box(tmp_path) -> dict:
    if os.geteuid() != 0 or not shutil.which("nft"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the nftables guard test (root and nft)")
        pytest.skip("needs root and nft")
    s = settings(**TLS)
    files = {"counters": binding_counters.nft_ruleset(s), "tls": tls_ports.ruleset(s),
             "track": drain.ruleset(s, refuse=False), "refuse": drain.ruleset(s, refuse=True)}
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.nft"
        paths[name].write_text(text)
    loaded = tmp_path / "drain-ruleset"
    guard = tmp_path / "stun-nft-guard"
    guard.write_text(nft_guard.script({binding_counters.TABLE: str(paths["counters"]),
                                       tls_ports.TABLE: str(paths["tls"])},
                                      (str(paths["track"]), str(paths["refuse"])), str(loaded)))
    with NetNs(prefix="stun-guard", veth=False) as ns:
        def nft(*args: str) -> str:
            return subprocess.run(["ip", "netns", "exec", ns.name, "nft", *args], check=True, capture_output=True,
                                  text=True, timeout=10).stdout

        def run_guard() -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns.name, "bash", str(guard)], capture_output=True,
                                  text=True, timeout=30)

        for name in ("counters", "tls", "track"):
            nft("-f", str(paths[name]))
        yield {"nft": nft, "guard": run_guard, "paths": paths, "loaded": loaded}


def tables(box) -> dict[str, str]:
    names = [line.split()[-1] for line in box["nft"]("list", "tables").splitlines()]
    return {n: box["nft"]("list", "table", "inet", n) for n in names}


def test_every_table_comes_back_after_a_flush_as_it_was(box):
    before = tables(box)
    assert set(before) == {binding_counters.TABLE, tls_ports.TABLE, drain.TABLE}
    box["nft"]("flush", "ruleset")
    assert tables(box) == {}
    done = box["guard"]()
    assert done.returncode == 0, done.stderr
    assert tables(box) == before
    assert done.stdout.count("was missing") == 3


def test_nothing_is_reloaded_while_every_table_is_there(box):
    box["nft"]("add", "counter", "inet", binding_counters.TABLE, "marker")  # a reload would remove it
    done = box["guard"]()
    assert done.returncode == 0 and done.stdout == "", done
    assert "marker" in box["nft"]("list", "table", "inet", binding_counters.TABLE)


def test_a_flush_mid_drain_restores_the_refusing_table(box):
    box["nft"]("-f", str(box["paths"]["refuse"]))
    box["loaded"].write_text(f"{box['paths']['refuse']}\n")  # as the drain's load() records it
    box["nft"]("flush", "ruleset")
    assert box["guard"]().returncode == 0
    assert "reject" in box["nft"]("list", "table", "inet", drain.TABLE)


def test_a_drain_record_naming_another_file_restores_tracking_only(box):
    box["loaded"].write_text("/tmp/anything.nft\n")
    box["nft"]("flush", "ruleset")
    assert box["guard"]().returncode == 0
    assert "reject" not in box["nft"]("list", "table", "inet", drain.TABLE)


def test_the_guards_units_are_valid(tmp_path):
    """When they run (every minute, after nftables starts) as systemd reads them:
    tests/boot/test_boot_script.py."""
    files = instance_files()
    units = {unit: files[f"{UNIT_DIR}/{unit}"] for unit in nft_guard.UNITS}
    units["stun-nft-guard.service"] = units["stun-nft-guard.service"].replace(nft_guard.SCRIPT_PATH, "/bin/true")
    assert verify_units(tmp_path, units) == ""


def test_the_drain_records_the_ruleset_it_loads(tmp_path):
    namespace: dict = {}
    exec(compile(drain.script(settings()), "stun-drain", "exec"), namespace)
    record = tmp_path / "drain-ruleset"
    namespace["load"]("refuse.nft", nft=("true",), loaded=str(record))
    assert record.read_text() == "refuse.nft\n"


def test_the_guard_is_shellcheck_clean(tmp_path):
    from tests.instance.test_nlb_targets import _shellcheck
    _shellcheck(tmp_path, "stun-nft-guard", nft_guard.script(nft_guard.tables(settings(**TLS))))
