"""Pulumi.yaml's `config:` block, the single source of every key's type and default, and
how raw config text becomes those types."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from stun_infra.common.project import PROJECT_FILE
from stun_infra.common.text import printable


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: str
    default: Any
    description: str
    items: str = "string"  # element type of an array


class DuplicateKey(yaml.constructor.ConstructorError):
    """A map that names one key twice: Pulumi refuses such a file, YAML would keep the last."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKey(None, None, f"{printable(str(key))} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML as Pulumi reads its project and stack files: safe, and a key twice in a map is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


@cache
def key_specs() -> dict[str, KeySpec]:
    """The `config:` block of Pulumi.yaml, by key."""
    doc = load_yaml(PROJECT_FILE.read_text())
    return {name: KeySpec(name, d["type"], d.get("default"), d.get("description", ""),
                          d.get("items", {}).get("type", "string"))
            for name, d in doc["config"].items()}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _parse(spec: KeySpec, raw: Any) -> Any:
    """Raw config (strings from the engine, natives from YAML defaults) into spec.type."""
    if spec.type == "string":
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        return raw
    if spec.type == "integer":
        if isinstance(raw, bool):
            raise ValueError("must be a whole number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
            return int(raw)
        raise ValueError("must be a whole number")
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise ValueError("must be true or false")
    if spec.type == "array":
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw) if raw.strip() else []
            except (json.JSONDecodeError, RecursionError):
                raise ValueError("must be a list of strings (YAML list or JSON array)") from None
        if spec.items == "integer":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      or isinstance(v, str) and v.strip().isdigit()
                                                      for v in value):
                raise ValueError("must be a list of whole numbers (YAML list or JSON array, e.g. [443, 5349])")
            return tuple(int(v) for v in value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of strings (YAML list or JSON array)")
        return tuple(value)
    raise AssertionError(f"Pulumi.yaml declares an unsupported type {spec.type!r}")
