"""Each component built alone on the mock engine, as pulumi-awsx tests its components:
the component's own resources, parented under it, with nothing else of the stack around."""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from stun_infra.cloud.components.base import TYPE_MODULES
from stun_infra.cloud.offline import OfflineMocks, OfflineRun, Registration, run_program
from stun_infra.common.project import PROJECT

REGION = "eu-west-3"
TAGS = {"Project": PROJECT, "Stack": "alone", "ManagedBy": "pulumi"}
ACCOUNT = "123456789012"


def build_alone(make: Callable[[], pulumi.ComponentResource]) -> OfflineRun:
    """Run `make` (which builds one component from literal args) on the mock engine."""
    def build() -> None:
        make()

    return run_program(build, OfflineMocks(REGION), stack="alone")


def component(run: OfflineRun, token: str) -> Registration:
    """The one registration of this component type, checked to hold everything else the run made
    (each resource's parent chain reaches it) and to have registered its outputs."""
    (found,) = [r for r in run.registrations if r.type == token]
    parents = {r.urn: r.parent for r in run.registrations}

    def under(urn: str) -> bool:
        while urn in parents:
            if urn == found.urn:
                return True
            urn = parents[urn]
        return False

    strays = [r.urn for r in run.registrations if r.type != token and not under(r.urn)]
    assert strays == [], f"not parented under {token}: {strays}"
    assert found.urn in run.outputs_registered
    module = token.split(":")[1]
    assert module in TYPE_MODULES.values(), f"{token}: its module is not in the type token map"
    return found


def children(run: OfflineRun, typ: str) -> list[Registration]:
    return [r for r in run.registrations if r.type == typ]
