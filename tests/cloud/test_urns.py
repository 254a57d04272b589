"""URNs are a contract: the program produces exactly the checked-in list for each case."""

from __future__ import annotations

import difflib

import pytest

from tests.cloud.urns import CASES, path_of, urns


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_program_produces_exactly_the_checked_in_urns(case):
    expected = path_of(case).read_text().splitlines()
    actual = urns(case)
    diff = "\n".join(difflib.unified_diff(expected, actual, "checked in", "program", lineterm=""))
    assert actual == expected, (
        f"URNs of {case} changed: every deployed stack would replace or orphan these. If deliberate, "
        f"add aliases and a changelog line, then run `.venv/bin/python -m tests.cloud.urns`.\n{diff}")


def test_every_checked_in_list_is_a_case():
    files = {p.stem for p in path_of("x").parent.glob("*.txt")}
    assert files == set(CASES)


def test_a_renamed_resource_is_caught(monkeypatch):
    import tests.cloud.urns as module
    original = module.run_offline

    def renamed(*args, **kwargs):
        run = original(*args, **kwargs)
        first = run.registrations[0]
        run.registrations[0] = type(first)(**{**first.__dict__, "urn": first.urn + "-renamed"})
        return run

    monkeypatch.setattr(module, "run_offline", renamed)
    assert module.urns("dev-static") != path_of("dev-static").read_text().splitlines()


def test_urns_have_the_engines_shape():
    """As the engine builds them: a child of the stack carries no stack type, a deeper resource
    its parent's whole type chain (the SDK's mock keeps only the last parent type)."""
    listed = path_of("dev-regions-dns").read_text().splitlines()
    assert "urn:pulumi:dev::stun-infra::stun-infra:access:InstanceAccess::stun-infra-dev" in listed
    assert not [u for u in listed if "pulumi:pulumi:Stack$" in u]
    assert ("urn:pulumi:dev::stun-infra::stun-infra:region:RegionGroup$stun-infra:access:InstanceAccess$"
            "aws:iam/role:Role::stun-infra-dev-us-east-1-role") in listed
