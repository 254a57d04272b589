"""`stun-infra secret rotate|finish|status` run as users run it, against a stand-in `pulumi`
that keeps the stack's config in a file as `pulumi config` does (secrets marked, values set
from stdin when not on the command line) and records every call's arguments."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stun_infra.settings import TURN_SECRET_OVERLAP, load_settings

from .conftest import assert_one_line_error, cli

GENERATED = "generated-0123456789abcdefghijKLMNOPQRST"
FAKE_PULUMI = r'''#!{python}
import json, os, sys
from pathlib import Path
state = Path(os.environ["PULUMI_STANDIN"])
args = sys.argv[1:]
with (state / "calls.jsonl").open("a") as f:
    f.write(json.dumps(args) + "\n")
stack = args[args.index("--stack") + 1]
if stack != "dev":
    print(f"error: no stack named '{{stack}}' found", file=sys.stderr); sys.exit(255)
config = json.loads((state / "config.json").read_text())
if args[:2] == ["config", "--json"]:
    print(json.dumps({{k: {{"value": v["value"], "secret": v["secret"]}} for k, v in config.items()}}))
elif args[:2] == ["config", "set"]:
    rest = [a for a in args[2:] if a not in ("--secret",)]
    key = rest[0]
    value = rest[1] if rest[1] != "--stack" else sys.stdin.read()
    config[key] = {{"value": value, "secret": "--secret" in args}}
elif args[:2] == ["config", "rm"]:
    config.pop(args[2], None)
elif args[:2] == ["stack", "output"]:
    outputs = json.loads((state / "outputs.json").read_text())
    if "turn_shared_secret" not in outputs:
        print("error: current stack does not have output property 'turn_shared_secret'", file=sys.stderr)
        sys.exit(255)
    print(json.dumps(outputs["turn_shared_secret"]))
else:
    sys.exit(2)
(state / "config.json").write_text(json.dumps(config))
'''


class Stack:
    def __init__(self, folder: Path):
        self.state, self.bin = folder / "pulumi", folder / "bin"
        self.state.mkdir()
        self.bin.mkdir()
        fake = self.bin / "pulumi"
        fake.write_text(FAKE_PULUMI.format(python=sys.executable))
        fake.chmod(0o755)
        self.outputs = {"turn_shared_secret": GENERATED}
        self.config = {}

    @property
    def config(self) -> dict[str, dict]:
        return json.loads((self.state / "config.json").read_text())

    @config.setter
    def config(self, value: dict[str, dict]) -> None:
        (self.state / "config.json").write_text(json.dumps(value))

    @property
    def outputs(self) -> dict:
        return json.loads((self.state / "outputs.json").read_text())

    @outputs.setter
    def outputs(self, value: dict) -> None:
        (self.state / "outputs.json").write_text(json.dumps(value))

    def value(self, key: str) -> str | None:
        entry = self.config.get(f"stun-infra:{key}")
        return entry["value"] if entry else None

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def secret(self, step: str, *args: str, new_secret: str | None = None):
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "PULUMI_STANDIN": str(self.state)}
        env.pop("STUN_INFRA_NEW_TURN_SECRET", None)
        if new_secret is not None:
            env["STUN_INFRA_NEW_TURN_SECRET"] = new_secret
        return cli("secret", step, "--stack", "dev", *args, env=env)

    def in_rotation(self, started: datetime) -> None:
        self.config = {
            "stun-infra:turnSecret": {"value": "current-0123456789abcdefghijKLMNOPQRST", "secret": True},
            "stun-infra:turnSecretPrevious": {"value": GENERATED, "secret": True},
            "stun-infra:turnSecretRotatedAt": {"value": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "secret": False}}


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# -- rotate ---------------------------------------------------------------------------------

def test_rotate_keeps_the_generated_secret_as_previous_and_sets_a_new_current(stack):
    done = stack.secret("rotate")
    assert done.returncode == 0, done.stderr
    assert stack.value("turnSecretPrevious") == GENERATED
    new = stack.value("turnSecret")
    assert new and new != GENERATED
    assert stack.config["stun-infra:turnSecret"]["secret"] and stack.config["stun-infra:turnSecretPrevious"]["secret"]


def test_rotate_records_when_the_rotation_began(stack):
    before = utc_now().replace(microsecond=0)
    stack.secret("rotate")
    began = datetime.strptime(stack.value("turnSecretRotatedAt"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= began <= utc_now()


def test_the_new_secret_passes_the_strength_rule_pulumi_up_applies(stack):
    stack.secret("rotate")
    raw = {k.split(":", 1)[1]: v["value"] for k, v in stack.config.items()}
    settings = load_settings(raw, stack="dev", region="eu-west-3",
                             secret_keys={"stun-infra:turnSecret", "stun-infra:turnSecretPrevious"})
    assert settings.turn_secret == stack.value("turnSecret")


def test_rotate_sets_the_previous_secret_before_the_new_one(stack):
    stack.secret("rotate")
    keys = [c[3] if "--secret" in c else c[2] for c in stack.calls() if c[:2] == ["config", "set"]]
    assert keys == ["stun-infra:turnSecretPrevious", "stun-infra:turnSecret", "stun-infra:turnSecretRotatedAt"]


def test_no_secret_travels_on_a_command_line_or_is_printed(stack):
    done = stack.secret("rotate")
    new = stack.value("turnSecret")
    argv = json.dumps(stack.calls())
    assert GENERATED not in argv and new not in argv
    assert GENERATED not in done.stdout + done.stderr and new not in done.stdout + done.stderr


def test_rotate_takes_a_secret_from_the_environment(stack):
    chosen = "chosen-ABCDEFGHIJKLMNOPqrstuvwxyz0123456789"
    assert stack.secret("rotate", new_secret=chosen).returncode == 0
    assert stack.value("turnSecret") == chosen


def test_rotate_tells_when_finish_is_allowed(stack):
    done = stack.secret("rotate")
    assert "run `pulumi up` now" in done.stdout
    assert "Finish no sooner than" in done.stdout


def test_a_second_rotation_continues_from_the_configured_secret(stack):
    stack.secret("rotate")
    first = stack.value("turnSecret")
    stack.config = {k: v for k, v in stack.config.items() if not k.endswith(("Previous", "RotatedAt"))}
    stack.secret("rotate")
    assert stack.value("turnSecretPrevious") == first


# -- rotate: bad input ------------------------------------------------------------------------

def test_rotating_during_a_rotation_is_refused(stack):
    stack.in_rotation(utc_now())
    before = stack.config
    result = stack.secret("rotate")
    assert_one_line_error(result, "a rotation is already in progress", "stun-infra secret finish")
    assert stack.config == before


@pytest.mark.parametrize("weak", ["short-secret", "a" * 40, "has a space in the middle 0123456789abcdef", ""],
                         ids=["short", "one-character", "space", "empty"])
def test_a_weak_secret_is_refused_without_being_shown(stack, weak):
    result = stack.secret("rotate", new_secret=weak)
    line = assert_one_line_error(result, "$STUN_INFRA_NEW_TURN_SECRET", "not shown")
    assert not weak or weak not in line
    assert stack.config == {}


def test_rotating_to_the_current_secret_is_refused(stack):
    result = stack.secret("rotate", new_secret=GENERATED)
    assert_one_line_error(result, "is the current secret")
    assert stack.config == {}


def test_rotate_without_a_deployed_secret_is_refused(stack):
    stack.outputs = {}
    result = stack.secret("rotate")
    assert_one_line_error(result, "no current secret to keep", "run `pulumi up` first")
    assert stack.config == {}


def test_an_unknown_stack_is_one_line_from_pulumi(stack):
    env_stack = stack
    result = cli("secret", "status", "--stack", "nope",
                 env={**os.environ, "PATH": f"{env_stack.bin}:{os.environ['PATH']}",
                      "PULUMI_STANDIN": str(env_stack.state)})
    assert_one_line_error(result, "no stack named 'nope' found")


# -- finish -------------------------------------------------------------------------------------

def test_finish_after_the_overlap_removes_the_previous_secret(stack):
    stack.in_rotation(utc_now() - TURN_SECRET_OVERLAP - timedelta(minutes=1))
    done = stack.secret("finish")
    assert done.returncode == 0, done.stderr
    assert stack.value("turnSecretPrevious") is None and stack.value("turnSecretRotatedAt") is None
    assert stack.value("turnSecret") == "current-0123456789abcdefghijKLMNOPQRST"


def test_finish_before_the_overlap_is_refused_with_the_time_left(stack):
    stack.in_rotation(utc_now() - TURN_SECRET_OVERLAP + timedelta(hours=2, minutes=30))
    before = stack.config
    result = stack.secret("finish")
    assert_one_line_error(result, "the overlap has not passed", "2 h 30 min left")
    assert stack.config == before


def test_retiring_the_only_secret_is_refused(stack):
    stack.config = {"stun-infra:turnSecret": {"value": "current-0123456789abcdefghijKLMNOPQRST", "secret": True}}
    before = stack.config
    result = stack.secret("finish")
    assert_one_line_error(result, "no rotation in progress", "would leave none")
    assert stack.config == before


def test_finish_with_a_malformed_start_time_names_the_key(stack):
    stack.in_rotation(utc_now())
    stack.config = {**stack.config, "stun-infra:turnSecretRotatedAt": {"value": "yesterday\nrm -rf", "secret": False}}
    result = stack.secret("finish")
    assert_one_line_error(result, "stun-infra:turnSecretRotatedAt", "2026-12-05T00:00:00Z")


# -- status -------------------------------------------------------------------------------------

def test_status_outside_a_rotation(stack):
    assert "no rotation in progress" in stack.secret("status").stdout


def test_status_during_a_rotation_says_when_finish_is_allowed(stack):
    stack.in_rotation(utc_now() - TURN_SECRET_OVERLAP + timedelta(minutes=90))
    assert "`finish` is allowed in 1 h 30 min" in stack.secret("status").stdout
