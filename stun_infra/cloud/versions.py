"""The installed providers against the floors pyproject.toml declares, checked before any
resource: `pulumi up` reuses an existing virtualenv as it is (only `pulumi install` and
scripts/bootstrap bring it to the lock), and a provider older than its floor lacks
arguments the program passes, a TypeError halfway through the deployment."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from stun_infra.common.project import PROJECT_ROOT

PYPROJECT = PROJECT_ROOT / "pyproject.toml"
# What the program itself imports; the test tools are not the program's business.
CHECKED = ("pulumi", "pulumi-aws", "pulumi-tls", "pulumi-random")
_FLOOR = re.compile(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def release(version: str) -> tuple[int, ...]:
    """The release numbers a version starts with (7.43.0 -> (7, 43)); () when it has none."""
    m = _RELEASE.match(version)
    numbers = [int(n) for n in m[0].split(".")] if m else []
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def floors() -> dict[str, str]:
    """Package -> the floor pyproject.toml declares, for the packages checked here."""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    found = {m[1].lower(): m[2] for m in map(_FLOOR.match, declared) if m}
    return {name: found[name] for name in CHECKED}


def version_problems() -> list[str]:
    """One line per installed package below its floor (or missing), naming the way out."""
    problems = []
    for name, floor in floors().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "none"
        if release(installed) < release(floor):
            problems.append(f"{name}: {installed} is installed, this program needs {floor} or later; run "
                            "`pulumi install` or scripts/bootstrap (they install requirements.txt's locked versions)")
    return problems
