"""One shape for every boot stage: what it ships in the instance package and what
`stun-infra-configure` does with it on the instance.

A stage's `files` and `units` are rendered here, at `pulumi up`, and installed by dpkg from
the package (stun_infra.instance.package); its `script` runs on the instance for what only
the instance knows (its addresses from IMDS, its secrets from Parameter Store); its
`enable` units are enabled and (re)started when the script is done. Stages run in the order
of stun_infra.instance.stages.STAGES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UNIT_DIR = "/lib/systemd/system"
_NAME = re.compile(r"[a-z][a-z0-9-]*")
_PATH = re.compile(r"(/[A-Za-z0-9._@+-]+)+")


@dataclass(frozen=True)
class InstanceFile:
    """A file the package installs, owned by root (`mode` 0755 for a program)."""

    path: str
    text: str
    mode: int = 0o644

    def __post_init__(self) -> None:
        if not _PATH.fullmatch(self.path) or "/../" in self.path + "/":
            raise ValueError(f"not an absolute, plain file path: {self.path!r}")


@dataclass(frozen=True)
class Stage:
    """One step of the boot: its name (in the begin/end lines), what it ships, what it runs.

    `when`: a bash condition; while it is false on the instance the stage's script and
    enabling are skipped (its files are still installed).
    """

    name: str
    files: tuple[InstanceFile, ...] = ()
    units: dict[str, str] = field(default_factory=dict)  # unit file name -> text, in UNIT_DIR
    enable: tuple[str, ...] = ()  # enabled and (re)started once the script is done
    script: str = ""
    when: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"stage name must be lower-case words joined by '-': {self.name!r}")
        unknown = [u for u in self.enable if u not in self.units and not u.endswith((".service", ".timer"))]
        if unknown:
            raise ValueError(f"stage {self.name}: cannot enable {unknown}")

    def shipped(self) -> tuple[InstanceFile, ...]:
        """Every file of this stage in the package, units included."""
        return self.files + tuple(InstanceFile(f"{UNIT_DIR}/{name}", text) for name, text in self.units.items())


def unit_settings(text: str, section: str) -> dict[str, list[str]]:
    """Key -> values, in order, of one section of a systemd unit file (comments left out)."""
    current, found = "", {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found
