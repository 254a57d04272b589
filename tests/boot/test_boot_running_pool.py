"""A warm pool kept Running, with reuse on scale-in, on the booted machine.

The pool has no start to configure at: its instance waits there with
stun-infra-await-service.service, which restarts configure's unit once IMDS says InService.
With reuse on scale-in, `Warmed:Running` makes the drain watcher drain and complete the
termination hook, then start the await unit again; the next trip in service configures it
again. One autoscale x86_64 instance, launched into the pool.
"""

from __future__ import annotations

import pytest

import boot_sandbox as sb
from stun_infra.instance.services import CONFIGURE_UNIT
from test_boot_warm_pool import active_services, completions

pytestmark = pytest.mark.boot

WAIT = 120.0  # bound on each wait below: the programs poll IMDS every 5 s, configure takes ~15 s


def hook_calls(box: sb.Sandbox, hook: str) -> list[dict]:
    return [c for c in completions(box) if c["lifecycle"]["LifecycleHookName"] == hook]


def configure_runs(box: sb.Sandbox) -> int:
    """When systemd last started configure's unit (monotonic µs; 0: never)."""
    return int(box.unit_property(CONFIGURE_UNIT, "ExecMainStartTimestampMonotonic") or 0)


def configured_since(box: sb.Sandbox, started: int) -> bool:
    """configure's unit ran again after `started` and succeeded."""
    return (configure_runs(box) > started and box.unit_property(CONFIGURE_UNIT, "ActiveState") == "active"
            and box.unit_property(CONFIGURE_UNIT, "Result") == "success")


def put_in_service(box: sb.Sandbox, settings) -> dict:  # noqa: ANN001
    """The group puts the instance in service: what the await unit and configure then did."""
    from stun_infra.instance import launch

    launches, started = len(hook_calls(box, launch.hook_name(settings))), configure_runs(box)
    box.set_lifecycle_state("InService")
    sb.wait_until("configure runs again and succeeds", lambda: configured_since(box, started), timeout=WAIT)
    sb.wait_until("the launching action is completed", lambda: len(hook_calls(box, launch.hook_name(settings))) > launches,
               timeout=WAIT)
    return {"await": [box.unit_property(launch.AWAIT_UNIT, p) for p in ("ActiveState", "Result")],
            "await_log": box.journal(launch.AWAIT_UNIT),
            "mapped": box.stun_binding(box.instance.private_ip, settings.stun_port)[1][0],
            "drain": box.unit_property("stun-drain.service", "ActiveState")}


@pytest.fixture(scope="module")
def running_pool(rootfs_cache, tmp_path_factory):
    """An instance of a Running warm pool with reuse on scale-in: launched into the pool, put in
    service, returned to the pool by a scale-in, put in service again."""
    from stun_infra.cloud.offline import stack_settings
    from stun_infra.instance import drain, launch

    settings = stack_settings("prod", {"instanceType": "c7i.large", "ipv6": "false", "warmPool": "Running",
                                       "warmPoolReuseOnScaleIn": "true"})
    assert launch.returns_to_pool(settings) and settings.warm_pool == "Running"
    instance = sb.Instance.of(settings)
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("running-pool"),
                           settings, instance) as (box, boot, _secret):
        box.set_lifecycle_state("Warmed:Running")
        run = box.boot(box.user_data(settings, boot))
        in_pool = {"run": run, "await": box.unit_property(launch.AWAIT_UNIT, "ActiveState"),
                   "active": active_services(box), "configure_started": configure_runs(box)}
        first = put_in_service(box, settings)
        box.set_lifecycle_state("Warmed:Running")  # a scale-in returns it to the pool
        sb.wait_until("the drain completes the termination hook", lambda: hook_calls(box, drain.hook_name(settings)),
                   timeout=WAIT)
        sb.wait_until("the await unit waits again",
                   lambda: box.unit_property(launch.AWAIT_UNIT, "ActiveState") == "active", timeout=WAIT)
        returned = {"drain_log": box.journal(drain.WATCH_UNIT), "active": active_services(box),
                    "watcher": [box.unit_property(drain.WATCH_UNIT, p) for p in ("ExecMainStatus", "Result")]}
        second = put_in_service(box, settings)
        yield {"settings": settings, "box": box, "in_pool": in_pool, "first": first, "returned": returned,
               "second": second}


def test_a_running_pool_launch_installs_and_leaves_the_await_unit_waiting(running_pool):
    from stun_infra.instance import launch

    pool = running_pool["in_pool"]
    assert (pool["run"].status, pool["run"].returncode, pool["run"].failed_units) == ("done", 0, []), \
        pool["run"].output[-3000:]
    assert "stun-infra: warm pool: configure stops here" in pool["run"].output
    assert pool["await"] == "active" and pool["active"] == [launch.AWAIT_UNIT], pool


def test_in_service_the_await_unit_restarts_configure_which_serves(running_pool):
    first = running_pool["first"]
    assert "the group puts this instance in service: configuring" in first["await_log"], first["await_log"]
    assert first["await"] == ["inactive", "success"], first
    assert first["mapped"] == sb.CLIENT_IP  # coturn answers a new client
    assert first["drain"] == "active"  # the drain watches the lifecycle state


def test_a_scale_in_with_reuse_drains_and_completes_the_termination_hook(running_pool):
    from stun_infra.instance import drain, launch

    box, settings = running_pool["box"], running_pool["settings"]
    (call,) = hook_calls(box, drain.hook_name(settings))
    assert call["lifecycle"] == {"LifecycleHookName": drain.hook_name(settings),
                                 "AutoScalingGroupName": box.instance.group_name,
                                 "InstanceId": box.instance.instance_id, "LifecycleActionResult": "CONTINUE"}
    log = running_pool["returned"]["drain_log"]
    assert "(Warmed:Running): to the warm pool" in log and "drained: no live session" in log, log
    assert launch.AWAIT_UNIT in running_pool["returned"]["active"]
    # the watcher exited with its own status, a success to its unit, which started the await unit
    assert running_pool["returned"]["watcher"] == [str(drain.IN_RUNNING_POOL_STATUS), "success"]


def test_the_next_trip_in_service_configures_again(running_pool):
    from stun_infra.instance import launch

    box, second = running_pool["box"], running_pool["second"]
    assert second["await"] == ["inactive", "success"] and second["drain"] == "active", second
    assert second["mapped"] == sb.CLIENT_IP  # new flows accepted again
    assert len(hook_calls(box, launch.hook_name(running_pool["settings"]))) == 3  # pool launch, two trips
