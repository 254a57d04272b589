"""Shared fixtures: the whole Pulumi program run on the mock engine (stun_infra.cloud.offline).

The mocks are the ones `stun-infra plan` uses: computed outputs by resource type,
the two lookups the program makes, and an error for any other invoke.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Any

import pytest

from stun_infra.cloud.offline import OfflineRun, run_offline
from stun_infra.settings import PROJECT, Settings, load_settings
from stun_infra.instance import package
from stun_infra.instance.boot_inputs import BootInputs, ParameterNames
from stun_infra.instance.userdata import render_user_data

REGION = "eu-west-3"
AGENT_SCHEMA = Path(__file__).resolve().parent / "schemas" / "amazon-cloudwatch-agent.schema.json"
SHARED_AGENT_SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "schemas" / AGENT_SCHEMA.name


def program(stack: str = "test", *, secret_keys: tuple[str, ...] = (),
            offered_zones: dict[str, list[str]] | None = None,
            hosted_zones: dict[str, tuple[str, bool]] | None = None, record_sets: tuple[dict, ...] = (),
            **config: Any) -> OfflineRun:
    """Run the program with these `stun-infra:` keys (camelCase) on top of the defaults."""
    raw = {"aws:region": REGION}
    for key, value in config.items():
        raw[key if ":" in key else f"{PROJECT}:{key}"] = value if isinstance(value, str) else _engine(value)
    return run_offline(raw, stack=stack, secret_keys={k if ":" in k else f"{PROJECT}:{k}" for k in secret_keys},
                       offered_zones=offered_zones, hosted_zones=hosted_zones, record_sets=record_sets)


# The three shapes of boot script, by the raw config that makes each.
DNS = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}
MODES = {"static": {}, "autoscale": {"mode": "autoscale"}, "stun-only": {"turn": "false"},
         "static-acm": DNS, "autoscale-acm": {"mode": "autoscale", **DNS}}
TEST_CERTIFICATE_ARN = "arn:aws:acm:eu-west-3:123456789012:certificate/0123abcd-0000-4000-8000-000000000000"


def settings(**raw: str) -> Settings:
    """Defaults plus these `stun-infra:` keys, for test stack `test`."""
    return load_settings(raw, stack="test", region=REGION)


TEST_BUCKET = "stun-infra-20261205001500000000000001"  # the 37 characters S3 makes of the stack's prefix


def boot_inputs(**raw: str) -> tuple[Settings, BootInputs]:
    """Settings for these keys and the boot inputs `pulumi up` gives them; static mode waits
    for a documentation-range Elastic IP."""
    s = settings(**raw)
    return s, BootInputs(ParameterNames.under(s.ssm_path, s.turn, tls=not s.tls.acm),
                         expected_public_ip="" if s.autoscale else "203.0.113.5",
                         certificate_arn=TEST_CERTIFICATE_ARN if s.tls.acm_export else "")


def configure_script(**raw: str) -> str:
    """stun-infra-configure for these keys: every boot stage, as the instance package ships it."""
    return package.configure_script(*boot_inputs(**raw))


def instance_files(**raw: str) -> dict[str, str]:
    """Every file the instance package installs for these keys: path -> text."""
    return {f.path: f.text for f in package.instance_files(*boot_inputs(**raw))}


def user_data(**raw: str) -> str:
    """The user data for these keys."""
    s, boot = boot_inputs(**raw)
    return render_user_data(s, TEST_BUCKET, package.build(s, boot), boot.expected_public_ip)


def _engine(value: Any) -> str:
    from stun_infra.cloud.offline import engine_string
    return engine_string(value)


def inputs_of(run: OfflineRun, typ: str) -> list[dict[str, Any]]:
    return [r.inputs for r in run.of_type(typ)]


@pytest.fixture(scope="session")
def static_run() -> OfflineRun:
    return program(mode="static", instanceCount=3)


@pytest.fixture(scope="session")
def autoscale_run() -> OfflineRun:
    return program(mode="autoscale", availabilityZones=3, minSize=2, desiredCapacity=3, maxSize=6)


@pytest.fixture(scope="session")
def stun_only_run() -> OfflineRun:
    return program(turn=False)


@pytest.fixture(scope="session", params=["static", "autoscale", "stun-only"])
def any_run(request, static_run, autoscale_run, stun_only_run) -> OfflineRun:
    return {"static": static_run, "autoscale": autoscale_run, "stun-only": stun_only_run}[request.param]


def heredoc(script: str, target: str, delimiter: str) -> str:
    """The body of the quoted heredoc in the boot script that writes `target`."""
    match = re.search(rf'{re.escape(target)}"? <<\'{delimiter}\'\n(.*?)^{delimiter}$', script, re.S | re.M)
    assert match, f"no heredoc {delimiter} for {target}"
    return match.group(1)
