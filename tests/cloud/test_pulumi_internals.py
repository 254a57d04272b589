"""What the offline engine assumes of Pulumi's SDK beyond its documented API, checked
against the installed SDK: the next release that breaks an assumption fails here, by name,
rather than somewhere inside a mock run. The deploy path assumes none of it."""

from __future__ import annotations

import ast
import re
from importlib import metadata
from pathlib import Path

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from stun_infra.cloud.offline import OfflineMocks, monitor
from stun_infra.cloud.versions import release

PACKAGE = Path(__file__).resolve().parents[2] / "stun_infra"


def test_the_secret_wire_form_is_the_sdks():
    assert (monitor.SIG_KEY, monitor.SECRET_SIG) == (rpc._special_sig_key, rpc._special_secret_sig)


def test_the_mock_monitor_has_what_the_recording_monitor_overrides_and_reads():
    for method in ("make_urn", "RegisterResource", "RegisterResourceOutputs"):
        assert callable(getattr(pulumi_mocks.MockMonitor, method, None)), method
    watched = pulumi_mocks.MockMonitor(OfflineMocks("eu-west-3"))
    assert isinstance(watched.resources, dict)


def test_a_registered_resource_keeps_its_state_where_the_recording_monitor_reads_it(static_run):
    vpc = static_run.one("aws:ec2/vpc:Vpc")
    assert vpc.state["cidrBlock"] == vpc.inputs["cidrBlock"] and vpc.id.startswith("vpc-")


def test_the_engine_is_pinned_to_the_locked_pulumi():
    """A new lock is a new SDK: re-check monitor.py's assumptions, then move the pin."""
    locked = re.search(r"^pulumi==(\S+)", (PACKAGE.parent / "requirements.txt").read_text(), re.M)[1]
    assert monitor.TESTED_PULUMI == locked


def test_the_installed_sdk_is_one_the_engine_was_tested_with():
    floor = re.search(r"^pulumi==(\S+)", (PACKAGE.parent / "requirements-min.txt").read_text(), re.M)[1]
    assert release(floor) <= release(metadata.version("pulumi")) <= release(monitor.TESTED_PULUMI)


def private_names(tree: ast.AST) -> list[str]:
    """`pulumi...._name` attributes and imports of underscore names from pulumi."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pulumi"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            if any(part.startswith("_") for part in (node.module or "").split(".")):
                found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in ("pulumi", "rpc", "runtime_config", "pulumi_mocks",
                                                           "settings", "runtime"):
                found.append(f"{base.id}...{node.attr}")
    return found


def test_no_module_of_the_program_uses_a_private_pulumi_name():
    used = {str(p.relative_to(PACKAGE)): private_names(ast.parse(p.read_text()))
            for p in PACKAGE.rglob("*.py")}
    assert {path: names for path, names in used.items() if names} == {}


def test_a_private_pulumi_name_is_found():
    assert private_names(ast.parse("from pulumi.runtime.sync_await import _sync_await\n"
                                   "x = rpc._special_sig_key\n")) == [
        "pulumi.runtime.sync_await._sync_await", "rpc..._special_sig_key"]
