"""The code is laid out by side; these rules keep the folders telling the truth.

Every import in every module of stun_infra (top-level or inside a function) is an edge
from the module's side to the imported module's side; an edge the rules do not allow
fails, naming the file and line.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stun_infra"

# side -> the sides of ours it may import (itself always allowed)
ALLOWED: dict[str, frozenset[str]] = {
    "common": frozenset(),  # project names, text and certificate helpers: every side but functions reads them
    "settings": frozenset({"common"}),
    "instance": frozenset({"settings", "common"}),
    "client": frozenset({"settings", "common"}),  # settings: the TLS plan
    "cloud": frozenset({"settings", "instance", "client", "functions", "common"}),
    "commands": frozenset({"settings", "instance", "client", "cloud", "common"}),
    "cli": frozenset({"commands"}),
    "main": frozenset({"cli"}),
    "functions": frozenset(),  # shipped alone to AWS Lambda
}
# third-party packages a side must never import
FORBIDDEN_THIRD_PARTY: dict[str, frozenset[str]] = {
    "common": frozenset({"pulumi", "pulumi_aws", "pulumi_tls", "pulumi_random"}),
    "instance": frozenset({"pulumi", "pulumi_aws", "pulumi_tls", "pulumi_random"}),
    "client": frozenset({"pulumi", "pulumi_aws", "pulumi_tls", "pulumi_random"}),
    "settings": frozenset({"pulumi", "pulumi_aws", "pulumi_tls", "pulumi_random"}),
    "functions": frozenset({"pulumi", "pulumi_aws", "pulumi_tls", "pulumi_random"}),
}


def side_of(module: str) -> str | None:
    """`stun_infra.cloud.components.fleet` -> `cloud`; None for what is not ours."""
    parts = module.split(".")
    if parts[0] != "stun_infra":
        return None
    if len(parts) == 1:
        return "package"
    return {"__main__": "main"}.get(parts[1], parts[1])


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) for each import statement, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] if base in ("stun_infra",) else [base]
            found += [(node.lineno, name) for name in names]
    return found


def violations(edges: list[tuple[str, int, str, str]]) -> list[str]:
    """Edges (file, line, importing module, imported module) that break the rules."""
    bad = []
    for file, line, importer, imported in edges:
        mine = side_of(importer)
        theirs = side_of(imported)
        if theirs is None:
            top = imported.split(".")[0]
            if top in FORBIDDEN_THIRD_PARTY.get(mine, ()):
                bad.append(f"{file}:{line}: {importer} ({mine}) imports {imported}")
            continue
        if theirs == mine or theirs == "package":
            continue
        if theirs not in ALLOWED.get(mine, frozenset()):
            bad.append(f"{file}:{line}: {importer} ({mine}) imports {imported} ({theirs})")
    return bad


def all_edges() -> list[tuple[str, int, str, str]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for line, imported in imports_of(path.read_text(), module, path.name == "__init__.py"):
            edges.append((str(path.relative_to(PACKAGE.parent)), line, module, imported))
    return edges


def test_every_module_belongs_to_a_known_side():
    sides = {side_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert sides <= set(ALLOWED) | {"package"}, sides - set(ALLOWED)


def test_no_import_crosses_a_forbidden_edge():
    assert violations(all_edges()) == []


def test_the_walk_sees_imports_inside_functions():
    source = "def f():\n    from stun_infra.cloud.offline import run_offline\n"
    assert imports_of(source, "stun_infra.client.probing", False) == [(2, "stun_infra.cloud.offline")]


def test_relative_imports_are_resolved():
    source = "from .components import base\nfrom . import stack\n"
    assert imports_of(source, "stun_infra.cloud", True) == [(1, "stun_infra.cloud.components"),
                                                             (2, "stun_infra.cloud")]


# What a Lambda function's module finds beside it: the standard library and the runtime's SDK.
LAMBDA_RUNTIME = frozenset({"boto3", "botocore"})


def shipped_alone_problems(edges: list[tuple[str, int, str, str]]) -> list[str]:
    """Imports of a `functions` module that AWS Lambda's Python runtime does not provide."""
    return [f"{file}:{line}: {importer} imports {imported}, which Lambda's runtime does not have"
            for file, line, importer, imported in edges
            if side_of(importer) == "functions" and side_of(imported) != "package"
            and imported.split(".")[0] not in sys.stdlib_module_names | LAMBDA_RUNTIME]


def test_a_lambda_function_imports_only_the_standard_library_and_boto3():
    assert [e for e in all_edges() if side_of(e[2]) == "functions"]
    assert shipped_alone_problems(all_edges()) == []


@pytest.mark.parametrize("imported", ["stun_infra.settings", "jinja2", "pulumi"])
def test_a_lambda_function_importing_anything_else_is_reported(imported):
    assert shipped_alone_problems([("f.py", 3, "stun_infra.functions.ipv6_targets", imported)])


@pytest.mark.parametrize("importer, imported", [
    ("stun_infra.client.probing", "stun_infra.cloud.stack"),
    ("stun_infra.instance.userdata", "pulumi"),
    ("stun_infra.instance.coturn", "stun_infra.client.turn_client"),
    ("stun_infra.client.credentials", "pulumi_aws.ec2"),
    ("stun_infra.cloud.stack", "stun_infra.commands.plan"),
    ("stun_infra.settings", "stun_infra.instance.coturn"),
    ("stun_infra.common.certificates", "stun_infra.settings"),
    ("stun_infra.common.text", "pulumi"),
    ("stun_infra.functions.ipv6_targets", "stun_infra.common.text"),
])
def test_a_forbidden_edge_is_reported(importer, imported):
    assert violations([("x.py", 1, importer, imported)]) == [
        f"x.py:1: {importer} ({side_of(importer)}) imports {imported}"
        + ("" if side_of(imported) is None else f" ({side_of(imported)})")]


@pytest.mark.parametrize("importer, imported", [
    ("stun_infra.cloud.stack", "stun_infra.instance.userdata"),
    ("stun_infra.cloud.stack", "stun_infra.client.targets"),
    ("stun_infra.commands.local", "stun_infra.cloud.offline"),
    ("stun_infra.instance.coturn", "stun_infra.settings"),
    ("stun_infra.client.probing", "aioice"),
    ("stun_infra.client.probing", "stun_infra.common.certificates"),
    ("stun_infra.settings.keys", "stun_infra.common.text"),
    ("stun_infra.instance.templating", "stun_infra.common.project"),
    ("stun_infra.client.targets", "stun_infra.settings.tls"),
])
def test_an_allowed_edge_passes(importer, imported):
    assert violations([("x.py", 1, importer, imported)]) == []
