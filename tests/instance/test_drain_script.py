"""The drain program and the boot stage that installs it, without a kernel: `nft` and `aws`
are stand-ins recording their argv (the real thing runs in tests/boot/test_drain.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stun_infra.instance import drain
from tests.conftest import MODES, heredoc, settings, user_data

RECORDER = """#!{python}
# Records its argv; answers describe-tags with the group, complete-lifecycle-action as the
# file `complete` next to it says (fail: exit 254 as AWS does before Terminating:Wait).
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
if "describe-tags" in sys.argv:
    print("stun-infra-test-asg-0123")
if "complete-lifecycle-action" in sys.argv and os.path.exists(os.path.join(here, "complete-fails")):
    os.remove(os.path.join(here, "complete-fails"))
    sys.exit("An error occurred (ValidationError): No active Lifecycle Action found with instance ID i-1")
"""


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """`aws` and `nft` stand-ins first on PATH; returns their directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("aws", "nft"):
        (bin_dir / name).write_text(RECORDER.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return bin_dir


def calls(bin_dir: Path) -> list[list[str]]:
    log = bin_dir / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "stun_drain.py"
    path.write_text(drain.script(settings(mode="autoscale")))
    spec = importlib.util.spec_from_file_location("stun_drain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.path = path
    return module


def run(program, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(program.path), *args], capture_output=True, text=True, timeout=30)


def empty_proc_net(tmp_path: Path) -> str:
    (tmp_path / "net").mkdir(exist_ok=True)
    (tmp_path / "net" / "udp").write_text("  sl  local_address rem_address   st\n")
    return str(tmp_path / "net")


def test_the_program_is_standard_library_only(program):
    imports = {line.split()[1].split(".")[0] for line in program.path.read_text().splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= set(sys.stdlib_module_names), imports


def test_drain_now_refuses_new_flows_then_ends_when_no_session_is_live(program, tools, tmp_path):
    done = run(program, "now", "--deadline", "30", "--proc-net", empty_proc_net(tmp_path))
    assert done.returncode == 0, done.stderr
    assert calls(tools) == [["nft", "-f", drain.REFUSE_RULESET]]
    assert done.stdout.splitlines()[-1] == "stun-drain: drained: no live session"


def test_cancel_accepts_new_flows_again(program, tools):
    done = run(program, "cancel")
    assert done.returncode == 0 and calls(tools) == [["nft", "-f", drain.TRACK_RULESET]]


@pytest.mark.parametrize("bad", ["3601", "-1", "1e3", "ten"])
def test_a_deadline_outside_0_to_3600_is_refused(program, tools, bad):
    done = run(program, "now", "--deadline", bad)
    assert done.returncode == 2 and "must be whole seconds from 0 to 3600" in done.stderr, done.stderr
    assert calls(tools) == []  # nothing refused


def test_drain_waits_for_the_last_session_or_the_deadline(program, tools):
    counts, clock = iter([2, 2, 1, 0]), [0.0]
    left = program.drain(60, count=lambda: next(counts), clock=lambda: clock[0],
                         sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    assert left == 0 and clock[0] == 3 * program.POLL_SECONDS
    clock[0] = 0.0
    left = program.drain(12, count=lambda: 3, clock=lambda: clock[0],
                         sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    assert left == 3 and clock[0] == 12  # the deadline, not a poll later


def test_the_lifecycle_action_is_retried_until_the_group_waits_for_it(program, tools):
    (tools / "complete-fails").write_text("")
    clock = [0.0]
    assert program.complete_lifecycle_action("eu-west-3", "i-1", "stun-infra-test-drain", until=100,
                                             clock=lambda: clock[0],
                                             sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    describe = ["aws", "ec2", "describe-tags", "--region", "eu-west-3", "--filters", "Name=resource-id,Values=i-1",
                "Name=key,Values=aws:autoscaling:groupName", "--query", "Tags[0].Value", "--output", "text"]
    complete = ["aws", "autoscaling", "complete-lifecycle-action", "--region", "eu-west-3",
                "--lifecycle-hook-name", "stun-infra-test-drain", "--auto-scaling-group-name", "stun-infra-test-asg-0123",
                "--instance-id", "i-1", "--lifecycle-action-result", "CONTINUE"]
    assert calls(tools) == [describe, complete, complete]  # the group's name is read once


def test_the_lifecycle_action_gives_up_at_the_hooks_timeout(program, tools, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no aws at all
    clock = [0.0]
    assert not program.complete_lifecycle_action("eu-west-3", "i-1", "hook", until=20, clock=lambda: clock[0],
                                                 sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    assert clock[0] == 20


@pytest.mark.parametrize("mode", MODES)
def test_drain_stage_writes_the_rendered_program_rulesets_and_units(mode):
    s = settings(**MODES[mode])
    script = user_data(**MODES[mode])
    assert heredoc(script, drain.DRAIN_PATH, "STUN_DRAIN") == drain.script(s)
    assert heredoc(script, drain.TRACK_RULESET, "STUN_DRAIN_TRACK") == drain.ruleset(s, refuse=False)
    assert heredoc(script, drain.REFUSE_RULESET, "STUN_DRAIN_REFUSE") == drain.ruleset(s, refuse=True)
    expected = [drain.TRACK_UNIT, drain.WATCH_UNIT] if s.autoscale else [drain.TRACK_UNIT]
    assert list(drain.units(s)) == expected
    for unit, text in drain.units(s).items():
        assert heredoc(script, f"/etc/systemd/system/{unit}", "UNIT").count(text.splitlines()[1]) == 1
    assert f"systemctl enable {' '.join(expected)}\n" in script


def test_refusing_ruleset_rejects_only_new_flows_to_coturns_listeners():
    text = drain.ruleset(settings(), refuse=True)
    assert "ct state established,related accept" in text
    assert "ct state new udp dport { 3478 } reject" in text
    assert "ct state new tcp dport { 3478, 5349 } reject with tcp reset" in text
    assert "reject" not in drain.ruleset(settings(), refuse=False)
