"""The drain program and the boot stage that installs it, without a kernel: `nft` and `aws`
are stand-ins recording their argv (the real thing, and what it asks systemd,
runs in tests/boot/test_drain.py and test_boot_warm_pool.py)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from stun_infra.instance import drain, nlb_targets
from stun_infra.instance.nlb_targets import TargetGroupPort
from stun_infra.instance import package
from stun_infra.instance.boot_inputs import BootInputs, ParameterNames
from stun_infra.instance.stage import UNIT_DIR
from tests.conftest import MODES, configure_script, instance_files, settings

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
if "elbv2" in sys.argv and os.path.exists(os.path.join(here, "elb-fails")):
    sys.exit("An error occurred (AccessDenied) when calling the DeregisterTargets operation")
"""
# The IPv6 target groups of an autoscale dual-stack instance, and its address.
IPV6_GROUPS = [TargetGroupPort("arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/t-stun-v6/"
                               "0123456789abcdef", 3478),
               TargetGroupPort("arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/t-tls-v6/"
                               "fedcba9876543210", 5349)]
IPV6 = "2001:db8:42:2::23"


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


def load_program(path: Path, text: str):  # noqa: ANN201
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.path = path
    return module


@pytest.fixture
def program(tmp_path):
    return load_program(tmp_path / "stun_drain.py", drain.script(settings(mode="autoscale")))


@pytest.fixture
def dual_stack_program(tmp_path):
    """The drain of an autoscale dual-stack instance, with the IPv6 target groups' registration
    script as the boot script writes it (its env file here, the instance's address in it)."""
    env = tmp_path / "nlb-targets.env"
    env.write_text(f"REGION=eu-west-3\nIPV6={IPV6}\n")
    targets = tmp_path / "stun-nlb-targets"
    targets.write_text(nlb_targets.script(IPV6_GROUPS, env_path=str(env)))
    targets.chmod(0o755)
    return load_program(tmp_path / "stun_drain_dual.py", drain.script(settings(mode="autoscale"), str(targets)))


def elb_call(action: str, group: TargetGroupPort) -> list[str]:
    return ["aws", "elbv2", action, "--region", "eu-west-3", "--target-group-arn", group.arn,
            "--targets", f"Id={IPV6},Port={group.port}"]


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


def test_a_dual_stack_drain_leaves_the_ipv6_target_groups_before_it_refuses_new_flows(
        dual_stack_program, tools, tmp_path):
    done = run(dual_stack_program, "now", "--deadline", "30", "--proc-net", empty_proc_net(tmp_path))
    assert done.returncode == 0, done.stderr
    assert calls(tools) == [elb_call("deregister-targets", group) for group in IPV6_GROUPS] + [
        ["nft", "-f", drain.REFUSE_RULESET]]
    assert "stun-drain: out of the IPv6 target groups: new IPv6 flows go to the other instances" in done.stdout
    assert done.stdout.splitlines()[-1] == "stun-drain: drained: no live session"


def test_a_dual_stack_cancel_accepts_new_flows_then_rejoins_the_ipv6_target_groups(dual_stack_program, tools):
    done = run(dual_stack_program, "cancel")
    assert done.returncode == 0, done.stderr
    assert calls(tools) == [["nft", "-f", drain.TRACK_RULESET],
                            *(elb_call("register-targets", group) for group in IPV6_GROUPS)]
    assert done.stdout.splitlines()[-1] == "stun-drain: back in the IPv6 target groups"


def test_a_failed_deregistration_is_said_and_the_drain_still_refuses_and_waits(dual_stack_program, tools, tmp_path):
    (tools / "elb-fails").write_text("")
    (tools / "sleep").write_text("#!/bin/sh\n")  # the script's pause between its attempts
    (tools / "sleep").chmod(0o755)
    done = run(dual_stack_program, "now", "--deadline", "30", "--proc-net", empty_proc_net(tmp_path))
    assert done.returncode == 0, done.stderr
    attempts = 5  # templates/stun-nlb-targets.sh.j2 tries five times
    assert calls(tools) == [elb_call("deregister-targets", IPV6_GROUPS[0])] * attempts + [
        ["nft", "-f", drain.REFUSE_RULESET]]
    said = done.stdout.splitlines()
    assert "stun-drain: IPv6 target groups: deregister failed (1)" in said, said
    assert "stun-drain: still in the IPv6 target groups: new IPv6 flows are refused, not steered away" in said
    assert said[-1] == "stun-drain: drained: no live session"


def test_a_failed_registration_on_cancel_is_said_and_exits_1(dual_stack_program, tools):
    (tools / "elb-fails").write_text("")
    (tools / "sleep").write_text("#!/bin/sh\n")
    (tools / "sleep").chmod(0o755)
    done = run(dual_stack_program, "cancel")
    assert done.returncode == 1
    assert calls(tools)[0] == ["nft", "-f", drain.TRACK_RULESET]  # new flows accepted all the same
    assert "stun-drain: IPv6 target groups: register failed (1)" in done.stdout


def test_a_deregistration_that_hangs_is_ended_at_its_bound_with_its_children(dual_stack_program, tmp_path):
    pid_file = tmp_path / "child.pid"
    hangs = tmp_path / "hangs"
    hangs.write_text(f"#!/bin/sh\n/bin/sleep 600 &\necho $! > {pid_file}\nwait\n")
    hangs.chmod(0o755)
    assert dual_stack_program.ipv6_targets("deregister", script=str(hangs), timeout=5) is False  # long enough to start its child under load
    assert exited_within(int(pid_file.read_text()), seconds=10)  # killed (a SIGKILL lands when the child next runs)


def exited_within(pid: int, seconds: float) -> bool:
    """True once `pid` has exited (a zombie counts): its pidfd turns readable then."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


def test_a_drain_without_ipv6_target_groups_calls_no_load_balancer(program, tools, tmp_path):
    assert program.IPV6_TARGETS is None
    run(program, "now", "--deadline", "0", "--proc-net", empty_proc_net(tmp_path))
    run(program, "cancel")
    assert [c[0] for c in calls(tools)] == ["nft", "nft"]


@pytest.mark.parametrize("mode", MODES)
def test_a_package_without_ipv6_target_groups_has_a_drain_that_leaves_none(mode):
    """Static mode never has any (only the load balancer has target groups)."""
    assert instance_files(**MODES[mode])[drain.DRAIN_PATH].count("IPV6_TARGETS = None\n") == 1


def test_a_package_with_ipv6_target_groups_has_a_drain_that_leaves_them_with_its_registration_script():
    s = settings(mode="autoscale")
    dual = {f.path: f.text for f in package.instance_files(s, BootInputs(ParameterNames.under(s.ssm_path, s.turn),
                                                                          ipv6_target_groups=tuple(IPV6_GROUPS)))}
    assert dual[drain.DRAIN_PATH] == drain.script(s, nlb_targets.SCRIPT_PATH)
    assert dual[nlb_targets.SCRIPT_PATH] == nlb_targets.script(IPV6_GROUPS)


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


REUSE = {"mode": "autoscale", "warmPool": "Stopped", "warmPoolReuseOnScaleIn": "true"}


def watched(program, tmp_path, states: list[str | None]) -> int:
    """`stun-drain watch` over these target lifecycle states (the last one repeats), no time
    passing: its exit status."""
    args = argparse.Namespace(deadline=30, relay_user="turnserver", proc_net=empty_proc_net(tmp_path), nft="nft",
                              region="eu-west-3", instance_id="i-1", hook="stun-infra-test-drain")
    states = iter(states)
    last: list[str | None] = [None]
    return program.watch(args, clock=lambda: 0.0, sleep=lambda s: None,
                         read_state=lambda: last.__setitem__(0, next(states, last[0])) or last[0])


def completed_hooks(bin_dir: Path) -> list[str]:
    return [c[c.index("--lifecycle-hook-name") + 1] for c in calls(bin_dir) if "complete-lifecycle-action" in c]


def test_a_terminated_instance_drains_then_completes_the_termination_hook(program, tools, tmp_path):
    assert watched(program, tmp_path, ["InService", "InService", "Terminated"]) == 0
    assert calls(tools)[0] == ["nft", "-f", drain.REFUSE_RULESET]
    assert completed_hooks(tools) == ["stun-infra-test-drain"]


def test_without_reuse_on_scale_in_a_warmed_state_does_not_drain(program):
    assert program.leaving("Warmed:Stopped") is None and program.leaving("InService") is None


def test_with_reuse_an_instance_returned_to_the_warm_pool_drains_then_completes_the_termination_hook(
        tools, tmp_path):
    # AWS holds it at Warmed:Pending:Wait with EC2_INSTANCE_TERMINATING (warm pool events, example 4).
    program = load_program(tmp_path / "stun_drain_reuse.py", drain.script(settings(**REUSE)))
    assert watched(program, tmp_path, ["InService", "Warmed:Stopped"]) == 0
    assert calls(tools)[0] == ["nft", "-f", drain.REFUSE_RULESET]
    assert completed_hooks(tools) == ["stun-infra-test-drain"]


def test_an_instance_returned_to_a_running_pool_exits_for_its_unit_to_start_the_wait_there(tools, tmp_path):
    """The watcher (an unprivileged user) cannot start units: it exits with its own status (its
    unit, as root, then starts the one that waits in the pool: tests/boot/test_boot_running_pool.py)."""
    running = settings(**{**REUSE, "warmPool": "Running"})
    program = load_program(tmp_path / "stun_drain_running.py", drain.script(running))
    assert watched(program, tmp_path, ["Warmed:Running"]) == drain.IN_RUNNING_POOL_STATUS
    assert completed_hooks(tools) == ["stun-infra-test-drain"]
    assert not [c for c in calls(tools) if c[0] == "systemctl"]


def test_the_watchers_record_is_in_its_runtime_directory():
    """The directory and what its unit does after a return to a Running pool, as systemd reads the
    unit: tests/boot/test_drain.py and test_boot_running_pool.py."""
    assert drain.LOADED_PATH == f"/run/{drain.RUNTIME_DIRECTORY}/ruleset"


@pytest.mark.parametrize("mode", MODES)
def test_drain_stage_ships_the_rendered_program_rulesets_and_units(mode):
    s = settings(**MODES[mode])
    files = instance_files(**MODES[mode])
    assert files[drain.DRAIN_PATH] == drain.script(s)
    assert files[drain.TRACK_RULESET] == drain.ruleset(s, refuse=False)
    assert files[drain.REFUSE_RULESET] == drain.ruleset(s, refuse=True)
    expected = [drain.TRACK_UNIT, drain.WATCH_UNIT] if s.autoscale else [drain.TRACK_UNIT]
    assert list(drain.units(s)) == expected
    for unit, text in drain.units(s).items():
        assert files[f"{UNIT_DIR}/{unit}"] == text
    assert f"systemctl enable {' '.join(expected)}\n" in configure_script(**MODES[mode])


def test_refusing_ruleset_rejects_only_new_flows_to_coturns_listeners():
    text = drain.ruleset(settings(), refuse=True)
    assert "ct state established,related accept" in text
    assert "ct state new udp dport { 3478 } reject" in text
    assert "ct state new tcp dport { 3478, 5349 } reject with tcp reset" in text
    assert "reject" not in drain.ruleset(settings(), refuse=False)
