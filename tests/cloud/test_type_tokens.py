"""Component type tokens are part of every URN under them: each component file's token module
is the one the written map (components/base.py TYPE_MODULES) names for it."""

from __future__ import annotations

import re
from pathlib import Path

from stun_infra.cloud.components.base import TYPE_MODULES

COMPONENTS = Path(__file__).resolve().parents[2] / "stun_infra" / "cloud" / "components"
TOKEN = re.compile(r'super\(\).__init__\(f"\{PROJECT\}:([a-z0-9]+):([A-Za-z0-9]+)"')


def tokens_by_file() -> dict[str, list[tuple[str, str]]]:
    return {path.stem: TOKEN.findall(path.read_text()) for path in sorted(COMPONENTS.glob("*.py"))
            if path.stem not in ("__init__", "base")}


def test_every_component_file_is_in_the_map():
    assert sorted(tokens_by_file()) == sorted(TYPE_MODULES)


def test_every_token_uses_the_module_the_map_names_for_its_file():
    wrong = {f"{stem}.py: {module}:{cls}" for stem, found in tokens_by_file().items() for module, cls in found
             if module != TYPE_MODULES.get(stem)}
    assert wrong == set()


def test_every_component_file_declares_a_token():
    assert [stem for stem, found in tokens_by_file().items() if not found] == []
