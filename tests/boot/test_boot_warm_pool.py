"""An instance launched into a warm pool, then started out of it by a scale-out.

While IMDS's target lifecycle state is `Warmed:*` (AWS documents `Warmed:Stopped`,
`Warmed:Running`, `Warmed:Hibernated` as the targets of a warm pool launch), the boot installs
the package and AWS's agents, completes the group's launching action and stops there: no
coturn, no metrics, nothing registered. Its later start as `InService` configures and serves
(a TURN allocation relays on that start's public IPv4) and completes the launching action
once configured, so the group puts it in the load balancer only then.
(A pool kept Running: test_boot_running_pool.py.)
"""

from __future__ import annotations

import pytest

import boot_sandbox as sb
from test_boot_restart import relayed

pytestmark = pytest.mark.boot

SCALE_OUT_PUBLIC_IP = "198.51.100.79"


def completions(box: sb.Sandbox) -> list[dict]:
    return [r for r in box.requests("ssm") if r.get("lifecycle")]


def aws_actions(box: sb.Sandbox) -> list[str]:
    return [r.get("action", "") for r in box.requests("ssm")]


def active_services(box: sb.Sandbox) -> list[str]:
    """The stack's services (coturn, stun-*) systemd has running or ran."""
    listed = box.systemctl("list-units", "--type=service", "--state=active", "--no-legend", "--plain").stdout
    return sorted(u for u in (line.split()[0] for line in listed.splitlines() if line.split())
                  if u.startswith(("coturn", "stun-")))


@pytest.fixture(scope="module")
def warmed(rootfs_cache, tmp_path_factory):
    from stun_infra.cloud.offline import stack_settings

    settings = stack_settings("prod", {"instanceType": "c7i.large", "ipv6": "false"})
    assert settings.autoscale and settings.turn
    instance = sb.Instance.of(settings)
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("warm-pool"),
                           settings, instance) as (box, boot, secret):
        box.set_lifecycle_state("Warmed:Stopped")
        run = box.boot(box.user_data(settings, boot))
        at_warm_launch = {"run": run, "completions": completions(box), "actions": aws_actions(box),
                          "active": active_services(box),
                          "configured": box.exec("test", "-e", "/run/stun-infra/configured", check=False).returncode == 0}
        box.power_off()  # what the group does with a Warmed:Stopped instance once its launch completed
        box.set_lifecycle_state("InService")
        start = box.start(SCALE_OUT_PUBLIC_IP)
        yield {"settings": settings, "box": box, "warm": at_warm_launch, "start": start,
               "configure": box.unit_property("stun-infra-configure.service", "Result"),
               "completions": completions(box), "relayed": relayed(box, settings, secret)}


def test_a_warm_pool_launch_installs_then_stops_configure_with_success(warmed):
    run = warmed["warm"]["run"]
    assert (run.status, run.returncode, run.failed_units) == ("done", 0, []), run.output[-3000:]
    assert "stun-infra: target lifecycle state 'Warmed:Stopped'" in run.output
    assert "stun-infra: warm pool: configure stops here" in run.output
    assert list(run.stages)[:3] == ["metadata", "agents", "warm-pool"] and "coturn" not in run.stages


def test_a_warm_pool_launch_completes_the_launching_action(warmed):
    from stun_infra.instance import launch

    (call,) = warmed["warm"]["completions"]
    box = warmed["box"]
    assert call["lifecycle"] == {"LifecycleHookName": launch.hook_name(warmed["settings"]),
                                 "AutoScalingGroupName": box.instance.group_name,
                                 "InstanceId": box.instance.instance_id, "LifecycleActionResult": "CONTINUE"}
    assert call["status"] == 200


def test_a_warm_pool_launch_starts_publishes_and_registers_nothing(warmed):
    warm = warmed["warm"]
    assert "PutMetricData" not in warm["actions"] and "RegisterTargets" not in warm["actions"]
    assert not warm["configured"]
    assert warm["active"] == [], warm["active"]


def test_the_start_out_of_the_pool_configures_serves_and_completes_the_action(warmed):
    assert warmed["start"].status == "done" and warmed["configure"] == "success", warmed["start"].failed_units
    assert warmed["relayed"][0] == SCALE_OUT_PUBLIC_IP, warmed["relayed"]
    assert len(warmed["completions"]) == 2  # the warm pool launch's, then this start's

