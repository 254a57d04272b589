"""No function in stun_infra/ is over MAX_LINES lines: a longer one holds several steps
that want names of their own (the stack's wiring, a mock's answers, a constructor)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stun_infra"
MAX_LINES = 60


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method longer than `limit`, decorators excluded."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_is_over_sixty_lines():
    found = {str(p.relative_to(PACKAGE.parent)): long_functions(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}
    assert {path: functions for path, functions in found.items() if functions} == {}


def test_a_long_function_is_found_and_a_short_one_is_not():
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    assert long_functions(f"def long():\n{body}") == [("long", 61)]
    assert long_functions(f"def fits():\n{body[:-len('    x59 = 59')-1]}") == []
