"""Versions are reproducible and the declared floors are what the code was tested on: the
lock files pin every package with its hashes, `pulumi install` and scripts/bootstrap install
them, and CI runs the fast suite on the floors (requirements-min.txt)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
EVERYTHING = RUNTIME + [Requirement(r) for r in PROJECT["optional-dependencies"]["test"]]
LOCKS = ("requirements.txt", "requirements-dev.txt", "requirements-min.txt")
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(lock: str) -> dict[str, list[Version]]:
    """Package -> the versions a lock pins (one per environment marker it forks on)."""
    found: dict[str, list[Version]] = {}
    for line in (ROOT / lock).read_text().splitlines():
        if m := _PIN.match(line):
            found.setdefault(canonicalize_name(m[1]), []).append(Version(m[2]))
    return found


def requirement_lines(lock: str) -> list[str]:
    """Each requirement of a lock with its continuation lines, comments dropped."""
    text = re.sub(r"#[^\n]*", "", (ROOT / lock).read_text())
    return [r.strip() for r in text.replace("\\\n", " ").splitlines() if r.strip()]


def floor(requirement: Requirement) -> Version | None:
    return next((Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")), None)


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_requirement_is_an_exact_version_with_hashes(lock):
    lines = requirement_lines(lock)
    assert lines
    for line in lines:
        assert _PIN.match(line.split(" --hash")[0] + " \\"), line
        assert "--hash=sha256:" in line, line


def test_every_dependency_has_a_floor():
    assert not [str(r) for r in EVERYTHING if floor(r) is None]


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_the_locks_satisfy_pyproject(lock):
    locked = pins(lock)
    wanted = RUNTIME if lock == "requirements.txt" else EVERYTHING
    for requirement in wanted:
        versions = locked.get(canonicalize_name(requirement.name))
        assert versions and all(v in requirement.specifier for v in versions), (str(requirement), versions)


def test_pulumi_gets_the_same_versions_as_the_tests():
    dev = pins("requirements-dev.txt")
    assert {name: versions for name, versions in pins("requirements.txt").items()
            if dev.get(name) != versions} == {}


def test_the_minimum_lock_pins_every_dependency_at_its_declared_floor():
    """What CI's minimum-versions run installs is exactly what pyproject.toml promises works."""
    locked = pins("requirements-min.txt")
    assert {str(r): locked.get(canonicalize_name(r.name)) for r in EVERYTHING
            if locked.get(canonicalize_name(r.name)) != [floor(r)]} == {}


def test_pulumis_install_path_reads_the_lock_and_the_project_needs_no_install():
    """`pulumi install` runs pip on requirements.txt in the virtualenv Pulumi.yaml names; pip's
    hash-checking refuses editable and path requirements, and none is needed: Pulumi runs the
    program folder with runpy.run_path, which puts the folder (and stun_infra) on sys.path."""
    runtime = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    assert runtime == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert not [line for line in requirement_lines("requirements.txt") if line.startswith(("-e", ".", "/"))]
    assert (ROOT / "__main__.py").exists() and (ROOT / "stun_infra" / "__init__.py").exists()


def test_bootstrap_installs_the_development_lock_with_hashes():
    script = (ROOT / "scripts" / "bootstrap").read_text()
    assert 'lock="${2:-requirements-dev.txt}"' in script
    assert '--require-hashes -r "${lock}"' in script and "--no-deps -e ." in script


def test_ci_runs_the_fast_suite_on_the_minimum_lock():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/bootstrap .venv-min requirements-min.txt" in ci
    assert '.venv-min/bin/python -m pytest -m "not coturn and not boot"' in ci
