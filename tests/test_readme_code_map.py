"""README's code map matches the tree: every module is named there (but for the folders the
map describes as one module per component or command), and every module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stun_infra"
# Folders the map describes as a whole: one module per component, one per command.
DESCRIBED_AS_A_WHOLE = ("cloud/components/", "commands/")


def code_map() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Code map"):text.index("### URNs are a contract")]


def unnamed_modules(section: str) -> list[str]:
    named = set(re.findall(r"([A-Za-z0-9_]+\.py)", section))
    return [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
            if p.name not in ("__init__.py", "__main__.py") and p.name not in named
            and not str(p.relative_to(PACKAGE)).startswith(DESCRIBED_AS_A_WHOLE)]


def test_every_module_is_named_in_the_code_map():
    assert unnamed_modules(code_map()) == []


def test_every_module_the_code_map_names_exists():
    existing = {p.name for p in ROOT.rglob("*.py") if not any(part.startswith(".venv") for part in p.parts)}
    assert sorted(set(re.findall(r"`[^`]*?([A-Za-z0-9_]+\.py)`", code_map())) - existing) == []


def test_a_module_missing_from_the_map_is_reported():
    assert "settings/tls.py" in unnamed_modules("`keys.py`, `cross.py`")
