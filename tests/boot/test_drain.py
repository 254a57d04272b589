"""The drain, run for real: an autoscale instance booted by its rendered user-data, with coturn
and stun-drain.service started from their units; a TURN client holds an allocation relaying
to a test peer; the metadata stand-in turns the target lifecycle state to Terminated.

Then a new client is refused while the held allocation keeps relaying, and the instance
completes its lifecycle action itself (CompleteLifecycleAction, signed with the role's
credentials from IMDSv2; moto 5.2 lacks the call, the stand-in records it): once the client
releases, or, when it never does, at the deadline (rendered short for the test). The stack
is dual stack and the instance has an IPv6 address, so it is in the load balancer's IPv6
target groups (the ELB stand-in records Register/DeregisterTargets): a drain leaves them
before it refuses new flows, and `stun-drain cancel` rejoins them."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import boot_sandbox as sb

from stun_infra.instance import drain

pytestmark = pytest.mark.boot

DEADLINE = 25  # seconds: drainSeconds rendered short (the key allows 60-3600), longer than a release takes
IPV6 = "2001:db8:42:3::23"  # the instance's own address, in the IPv6 target groups
WAIT = 90.0   # bound on every wait below
wait_until = functools.partial(sb.wait_until, timeout=WAIT)
DRAIN_HOOK_SUFFIX = "-drain"  # drain.hook_name: <prefix>-drain
CLIENT = Path(__file__).with_name("drain_client.py")


@pytest.fixture(scope="module")
def instance(rootfs_cache, tmp_path_factory):
    """An autoscale TURN instance, booted, its services started as boot would."""
    from stun_infra.cloud.offline import stack_settings

    settings = dataclasses.replace(stack_settings("prod", {"instanceType": "c7i.large"}), drain_seconds=DEADLINE)
    box_instance = sb.Instance.of(settings, ipv6=IPV6)
    assert settings.ipv6 and sb.ipv6_target_groups(settings)  # the stack has IPv6 target groups
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("drain"),
                           settings, box_instance) as (box, boot, secret):
        launch = box.boot(box.user_data(settings, boot))
        assert launch.status == "done", launch.output[-3000:]
        box.stun_binding(box_instance.private_ip, settings.stun_port)  # coturn answers
        yield box, settings, secret


def live_sessions(box: sb.Sandbox) -> int:
    """The instance's live sessions, counted by its own drain program."""
    code = ("import importlib.machinery as m; "
            f"print(m.SourceFileLoader('stun_drain', {drain.DRAIN_PATH!r}).load_module().live_sessions())")
    return int(box.exec("python3", "-c", code).stdout)


def completions(box: sb.Sandbox) -> list[dict]:
    """The drain's CompleteLifecycleAction calls (not the launching hook's, made at each boot)."""
    return [r for r in box.requests("ssm") if r.get("lifecycle")
            and r["lifecycle"]["LifecycleHookName"].endswith(DRAIN_HOOK_SUFFIX)]


def target_calls(box: sb.Sandbox, action: str) -> list[dict]:
    """RegisterTargets or DeregisterTargets calls the ELB stand-in answered."""
    return [r for r in box.requests("ssm") if r.get("action") == action]


def as_root(box: sb.Sandbox, *cmd: str) -> list[str]:
    """`cmd` as root on the instance, its AWS CLI trusting the sandbox CA (as for the units)."""
    return box.command(*cmd, env={"AWS_CA_BUNDLE": sb.SANDBOX_CA_BUNDLE})


def cancel(box: sb.Sandbox) -> None:
    sb.run(as_root(box, drain.DRAIN_PATH, "cancel"), timeout=WAIT)


class WatchLog:
    """What the drain service logged (its journal) since this was made."""

    def __init__(self, box: sb.Sandbox) -> None:
        self.box, self.seen = box, len(box.journal(drain.WATCH_UNIT))

    def read_text(self) -> str:
        return self.box.journal(drain.WATCH_UNIT)[self.seen:]


def start_client(box: sb.Sandbox, settings, secret: str, workdir: Path, hold: bool) -> subprocess.Popen:
    workdir.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(sb.REPO), "DRAIN_CLIENT_TURN_SECRET": secret}
    cmd = box.ns("env", *(f"{k}={v}" for k, v in env.items()), sys.executable, str(CLIENT),
                 "--server", box.instance.private_ip, "--port", str(settings.stun_port),
                 "--peer", sb.CLIENT_IP, "--dir", str(workdir), *(["--hold"] if hold else []))
    return subprocess.Popen(cmd, stdout=open(workdir / "out", "w"), stderr=subprocess.STDOUT)


def drain_run(box: sb.Sandbox, settings, secret: str, workdir: Path, *, hold: bool) -> tuple[dict, str, float]:
    """One scale-in: (what the client saw, the drain service's log, seconds from Terminated
    to the lifecycle call)."""
    log = WatchLog(box)
    done_before = len(completions(box))
    client = start_client(box, settings, secret, workdir, hold)
    try:
        wait_until("the client holds a relaying allocation", lambda: (workdir / "held.json").exists()
                   or client.poll() is not None)
        held = json.loads((workdir / "held.json").read_text())
        assert held["relays"], held
        t0 = time.monotonic()
        box.set_lifecycle_state("Terminated")
        wait_until("the instance drains", lambda: "new flows refused" in log.read_text())
        (workdir / "draining").write_text("")
        wait_until("the client checked", lambda: (workdir / "checked.json").exists() or client.poll() is not None)
        checked = json.loads((workdir / "checked.json").read_text())
        table = box.exec("nft", "list", "table", "inet", drain.TABLE).stdout
        assert "ct state new udp dport 3478 reject" in table, table  # what refused the newcomer
        wait_until("the lifecycle action is completed", lambda: len(completions(box)) > done_before)
        took = time.monotonic() - t0
        if hold:
            (workdir / "stop").write_text("")
        assert client.wait(timeout=WAIT) == 0, (workdir / "out").read_text()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=10)
    print(f"client: {checked}; lifecycle action {took:.1f} s after Terminated")
    return checked, log.read_text(), took


def check_completion(box: sb.Sandbox, settings) -> None:
    call = completions(box)[-1]
    assert call["lifecycle"] == {"LifecycleHookName": drain.hook_name(settings),
                                 "AutoScalingGroupName": box.instance.group_name,
                                 "InstanceId": box.instance.instance_id, "LifecycleActionResult": "CONTINUE"}
    assert (call["status"], call["scheme"], call["host"]) == (200, "https", f"autoscaling.{settings.region}.amazonaws.com")
    role_key = box.instance.imds_document(box.arch)["access_key_id"]
    assert call["access_key_id"] == role_key and call["session_token"], call  # the role's credentials


def test_the_watcher_keeps_its_record_in_a_runtime_directory_of_its_own(instance):
    """As systemd loaded its unit: no new privileges, /run/stun-drain made for it and kept across
    its restarts (the record of the ruleset it loaded)."""
    box = instance[0]
    shown = {p: box.unit_property(drain.WATCH_UNIT, p) for p in ("NoNewPrivileges", "RuntimeDirectory",
                                                                  "RuntimeDirectoryPreserve")}
    assert shown == {"NoNewPrivileges": "yes", "RuntimeDirectory": drain.RUNTIME_DIRECTORY,
                     "RuntimeDirectoryPreserve": "yes"}, shown


def test_without_a_running_pool_the_watchers_unit_starts_nothing_after_it_exits(instance):
    box = instance[0]
    shown = {p: box.unit_property(drain.WATCH_UNIT, p) for p in ("ExecStopPost", "SuccessExitStatus")}
    assert shown == {"ExecStopPost": "", "SuccessExitStatus": ""}, shown


def test_a_killed_watcher_is_started_again_by_systemd_and_watches_again(instance):
    """SIGKILL of stun-drain.service's process: systemd starts it again (its Restart=), and the new
    process reads the lifecycle state from IMDS again (the drains below rely on it)."""
    box, _, _ = instance
    unit = "stun-drain.service"
    pid, restarts = box.unit_property(unit, "MainPID"), int(box.unit_property(unit, "NRestarts"))
    box.exec("kill", "-KILL", pid)
    killed = time.time()
    wait_until("the watcher restarted", lambda: int(box.unit_property(unit, "NRestarts")) == restarts + 1
               and box.unit_property(unit, "ActiveState") == "active")
    assert box.unit_property(unit, "MainPID") not in ("0", pid)
    wait_until("the new watcher reads the lifecycle state", lambda: [
        r for r in box.requests("imds") if r["t"] > killed and r["path"].endswith("/autoscaling/target-lifecycle-state")])


def test_a_registration_killed_midway_is_run_again_by_systemd_until_it_registers(instance):
    """stun-nlb-targets.service started while the ELB endpoint is unreachable, its process
    SIGKILLed mid-retry: systemd runs it again (its Restart=, after RestartSec), and with the
    endpoint back the instance's IPv6 address is registered in every IPv6 target group."""
    from stun_infra.instance import nlb_targets

    box, settings, _ = instance
    unit, hosts = "stun-nlb-targets.service", box.root / "etc/hosts"
    endpoint = f"elasticloadbalancing.{settings.region}.amazonaws.com"
    box.systemctl("stop", unit)
    restarts, original = int(box.unit_property(unit, "NRestarts")), hosts.read_text()
    hosts.write_text(original.replace(f"{sb.AWS_API_IP} {endpoint}", f"192.0.2.99 {endpoint}"))
    try:
        box.systemctl("start", "--no-block", unit)
        wait_until("the registration retrying", lambda: box.unit_property(unit, "ActiveState") == "activating"
                   and "failed (attempt 1)" in box.journal(unit))
        box.exec("kill", "-KILL", box.unit_property(unit, "MainPID"))
        killed = time.time()
    finally:
        hosts.write_text(original)
    wait_until("registered after systemd's restart", lambda: box.unit_property(unit, "ActiveState") == "active",
               timeout=nlb_targets.REGISTER_RETRY_SECONDS + WAIT)
    assert int(box.unit_property(unit, "NRestarts")) == restarts + 1
    expected = sorted((g.arn, [[IPV6, str(g.port)]]) for g in sb.ipv6_target_groups(settings))
    assert sorted((c["target_group"], c["targets"]) for c in target_calls(box, "RegisterTargets")
                  if c["t"] > killed) == expected


def test_a_terminated_instance_refuses_newcomers_relays_held_calls_and_lets_go_when_they_end(instance, tmp_path):
    box, settings, secret = instance
    checked, log, took = drain_run(box, settings, secret, tmp_path / "release", hold=False)
    assert checked["refused"], checked      # a new client gets no allocation
    assert checked["relays"], checked       # the held call goes on
    assert "new flows refused, 1 live sessions" in log and "drained: no live session" in log, log
    assert took < DEADLINE, took            # it did not wait for the deadline
    check_completion(box, settings)


def test_a_call_that_never_ends_is_let_go_at_the_deadline(instance, tmp_path):
    box, settings, secret = instance
    # back in service: new flows accepted again, the watcher restarted
    box.set_lifecycle_state("InService")
    cancel(box)
    box.systemctl("restart", drain.WATCH_UNIT)
    checked, log, took = drain_run(box, settings, secret, tmp_path / "hold", hold=True)
    assert checked["refused"] and checked["relays"], checked
    assert "deadline reached with 1 live sessions" in log, log
    assert took >= DEADLINE, took
    check_completion(box, settings)
    assert len(completions(box)) == 2


def test_the_static_documents_command_drains_until_the_last_call_ends(instance, tmp_path):
    """What the static fleet's SSM document runs (Run Command), on the same booted instance:
    newcomers refused, the held call relays, and it returns once the call is released."""
    box, settings, secret = instance
    cancel(box)
    wait_until("the calls of the tests before are gone", lambda: live_sessions(box) == 0)
    workdir = tmp_path / "document"
    client = start_client(box, settings, secret, workdir, hold=False)
    out = box.logs / "document.out"
    command = as_root(box, *drain.document_command(str(DEADLINE)).split())
    document = None
    try:
        wait_until("the client holds a relaying allocation", lambda: (workdir / "held.json").exists()
                   or client.poll() is not None)
        t0 = time.monotonic()
        document = subprocess.Popen(command, stdout=open(out, "w"), stderr=subprocess.STDOUT)
        wait_until("the instance drains", lambda: "new flows refused" in out.read_text())
        (workdir / "draining").write_text("")
        wait_until("the client checked", lambda: (workdir / "checked.json").exists() or client.poll() is not None)
        checked = json.loads((workdir / "checked.json").read_text())
        assert document.wait(timeout=WAIT) == 0, out.read_text()
        took = time.monotonic() - t0
        assert client.wait(timeout=WAIT) == 0, (workdir / "out").read_text()
    finally:
        for proc in (client, document):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert checked["refused"] and checked["relays"], checked
    said = [line for line in out.read_text().splitlines() if line.startswith("stun-drain: ")]
    assert f"stun-drain: draining: new flows refused, 1 live sessions, waiting at most {DEADLINE} s" in said, said  # it counted the call
    assert said[-1] == "stun-drain: drained: no live session", said
    assert took < DEADLINE, took


def test_a_terminated_instance_leaves_the_ipv6_target_groups_before_it_refuses_new_flows(instance):
    """Back in service, `stun-drain cancel` rejoins the IPv6 target groups; then, the lifecycle
    state turned Terminated, DeregisterTargets for the instance's IPv6 address on each group's
    port reaches the ELB stand-in, signed with the role's credentials, before new flows are
    refused (recorded by the time the drain says so, and said before)."""
    box, settings, _ = instance
    groups = sb.ipv6_target_groups(settings)
    expected = sorted((g.arn, [[IPV6, str(g.port)]]) for g in groups)
    role_key = box.instance.imds_document(box.arch)["access_key_id"]

    def seen(action: str, since: int) -> list:
        calls = target_calls(box, action)[since:]
        assert all(c["status"] == 200 and c["access_key_id"] == role_key and c["session_token"]
                   for c in calls), calls  # the role's credentials
        return sorted((c["target_group"], c["targets"]) for c in calls)

    box.set_lifecycle_state("InService")
    registered = len(target_calls(box, "RegisterTargets"))
    cancel(box)
    assert seen("RegisterTargets", registered) == expected  # back in

    log = WatchLog(box)
    box.systemctl("restart", drain.WATCH_UNIT)
    deregistered, done_before = len(target_calls(box, "DeregisterTargets")), len(completions(box))
    box.set_lifecycle_state("Terminated")
    wait_until("the instance refuses new flows", lambda: "new flows refused" in log.read_text())
    assert seen("DeregisterTargets", deregistered) == expected  # already out when it refused
    said = log.read_text().splitlines()
    out = said.index("stun-drain: out of the IPv6 target groups: new IPv6 flows go to the other instances")
    assert out < next(i for i, line in enumerate(said) if "new flows refused" in line), said
    wait_until("the lifecycle action is completed", lambda: len(completions(box)) > done_before)
    check_completion(box, settings)


def test_a_new_start_tracks_again_and_a_flush_does_not_bring_back_the_last_drains_refusal(instance):
    """After a drain (the refusing table loaded and recorded), the tracking unit a start of
    configure restarts (a return to service from a warm pool kept running) replaces the table and
    its record: after `nft flush ruleset`, stun-nft-guard loads tracking, not the refusal."""
    box, settings, _ = instance
    sb.run(as_root(box, drain.DRAIN_PATH, "now", "--deadline", "0"), timeout=WAIT)
    assert box.exec("cat", drain.LOADED_PATH).stdout.strip() == drain.REFUSE_RULESET
    box.systemctl("restart", drain.TRACK_UNIT)
    box.exec("nft", "flush", "ruleset")
    box.systemctl("start", "stun-nft-guard.service")
    table = box.exec("nft", "list", "table", "inet", drain.TABLE).stdout
    assert "reject" not in table and "ct state established,related accept" in table, table
    box.stun_binding(box.instance.private_ip, settings.stun_port)  # a newcomer is answered


def test_the_watcher_records_its_refusal_over_a_record_root_made(instance):
    """`stun-drain cancel` run as root (SSM, by hand) after a new start makes the record afresh,
    owned by root; the watcher, its own unprivileged user, still records its drain over it."""
    box, _, _ = instance
    box.set_lifecycle_state("InService")  # back in service, a watcher watching again
    box.systemctl("restart", drain.TRACK_UNIT)
    cancel(box)
    assert box.exec("stat", "-c", "%U", drain.LOADED_PATH).stdout.strip() == "root"
    box.systemctl("restart", drain.WATCH_UNIT)
    log = WatchLog(box)
    box.set_lifecycle_state("Terminated")
    try:
        wait_until("the watcher drained", lambda: "drained: no live session" in log.read_text())
        assert box.exec("cat", drain.LOADED_PATH).stdout.strip() == drain.REFUSE_RULESET, log.read_text()
    finally:
        box.set_lifecycle_state("InService")
        cancel(box)
        box.systemctl("restart", drain.WATCH_UNIT)
