"""The recording mock monitor: the one place that leans on Pulumi's SDK beyond its
documented API (`MockMonitor`'s gRPC methods, its `resources` record and `make_urn`).

Only the offline engine uses it; `pulumi up` never imports it. It is written against
TESTED_PULUMI; tests/cloud/test_pulumi_internals.py checks every assumption made here
against the installed SDK, so the next release that breaks one fails there, by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from stun_infra.common.project import PROJECT

TESTED_PULUMI = "3.272.0"  # requirements.txt's lock; the floor (requirements-min.txt) passes the same tests
# The engine's wire form of a secret, from Pulumi's property-value protocol:
# {SIG_KEY: SECRET_SIG, "value": v} (the SDK keeps these as private names in pulumi.runtime.rpc).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass(frozen=True)
class Registration:
    urn: str
    id: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]  # secrets unwrapped
    secret_inputs: frozenset[str]  # top-level input names whose value is secret
    state: dict[str, Any]
    ignore_changes: tuple[str, ...] = ()
    delete_timeout: str = ""  # customTimeouts.delete, as the engine gets it ("" = the provider's)
    dependencies: frozenset[str] = frozenset()  # URNs this resource waits for
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()  # input names whose change replaces the resource
    provider: str = ""  # an explicit provider's reference ("" = the default provider)


# The engine leaves the root stack's type out of its children's URNs
# (sdk/go/common/resource/urn: `New`, the parent type is dropped when it is the root stack's).
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock engine, also keeping who registered what under which parent."""

    def __init__(self, mocks: pulumi.runtime.Mocks, stack: str):
        super().__init__(mocks)
        self.stack = stack
        self.registrations: list[Registration] = []
        self.outputs_registered: list[str] = []  # URNs whose register_outputs reached the engine

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: the type qualified by the parent's whole type chain, the root
        stack's type left out (the SDK's mock keeps only the parent's last type, and the root's),
        for this run's stack and project whichever thread asks (older SDKs, 3.231 the floor, ask
        from a worker thread that does not see the run's settings)."""
        qualified = type_
        if parent and (parent_type := parent.split("::")[2]) != ROOT_STACK_TYPE:
            qualified = f"{parent_type}${type_}"
        return "::".join([f"urn:pulumi:{self.stack}", PROJECT, qualified, name])

    def RegisterResourceOutputs(self, request):
        self.outputs_registered.append(request.urn)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = rpc.deserialize_properties(request.object)
            self.registrations.append(Registration(
                urn=response.urn, id=response.id, type=request.type, name=request.name, parent=request.parent,
                custom=bool(request.custom), inputs=unwrap_secrets(raw),
                secret_inputs=frozenset(k for k, v in raw.items() if _is_secret(v)),
                state=unwrap_secrets(self.resources[response.urn].state),  # MockMonitor's record
                ignore_changes=tuple(request.ignoreChanges),
                delete_timeout=request.customTimeouts.delete,
                dependencies=frozenset(request.dependencies)
                | {u for deps in request.propertyDependencies.values() for u in deps.urns},
                delete_before_replace=bool(request.deleteBeforeReplace),
                replace_on_changes=tuple(request.replaceOnChanges), provider=request.provider))
        return response


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def unwrap_secrets(value: Any) -> Any:
    """The engine's wire form of a secret is {sig: secret, value: v}; tests want v."""
    if _is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value

