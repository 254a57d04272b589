"""README's `plan` example is what `stun-infra plan` prints today: every line it shows (but
the `...` elisions) comes out of the real command, in the same order, so the example cannot
go stale when resources are added."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from stun_infra.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
PROMPT = "$ .venv/bin/stun-infra "


def plan_examples() -> list[tuple[list[str], list[str]]]:
    """(arguments, lines shown) for each `stun-infra plan` command in the README's plan section."""
    section = README.read_text().split("## Before `pulumi up`: `plan` and `render`", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    examples: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith(PROMPT):
            examples.append((shlex.split(line.removeprefix(PROMPT)), []))
        elif line.strip() and line.strip() != "...":
            examples[-1][1].append(line)
    return examples


EXAMPLES = plan_examples()


def words(line: str) -> list[str]:
    return line.split()


@pytest.mark.parametrize("args, shown", EXAMPLES, ids=[" ".join(args) for args, _ in EXAMPLES])
def test_the_readmes_plan_example_is_what_plan_prints(capsys, args, shown):
    main(args)
    printed = capsys.readouterr()
    remaining = iter(words(line) for line in (printed.out + printed.err).splitlines())
    missing = next((line for line in shown if words(line) not in remaining), None)
    assert missing is None, f"README shows a line `{' '.join(args)}` does not print (here, in this order): {missing!r}"
