"""An instance's lifecycle, for real: power off (systemd stops every unit, ExecStop runs), and
start with a new public IPv4 (an autoscale instance has no Elastic IP). At every start
stun-infra-configure.service re-reads the instance's addresses from IMDS before coturn serves,
so the new address is the one coturn announces and relays on.

One sandboxed autoscale TURN instance (x86_64, dual stack) is launched by its user data,
powered off, then started with another public IPv4 in the metadata stand-in; a TURN
allocation then relays on the new address. A last start without the metadata service shows
coturn is not started on a configuration configure could not write.
"""

from __future__ import annotations

import pytest

import boot_sandbox as sb

pytestmark = pytest.mark.boot

NEW_PUBLIC_IP = "198.51.100.77"
UNCONFIGURED_PUBLIC_IP = "198.51.100.78"
IPV6 = "2001:db8:42:4::23"
# A start without IMDS: cloud-init's wait for it, then configure's own retries fail; systemd
# would run configure again a minute later (its Restart=): the test looks before that.
FAILED_START_WAIT = 150


def target_calls(box: sb.Sandbox, action: str) -> list[tuple[str, list]]:
    return sorted((r["target_group"], r["targets"]) for r in box.requests("ssm") if r.get("action") == action)


@pytest.fixture(scope="module")
def restarted(rootfs_cache, tmp_path_factory):
    from stun_infra.cloud.offline import stack_settings

    settings = stack_settings("prod", {"instanceType": "c7i.large"})
    assert settings.autoscale and settings.turn and settings.ipv6
    instance = sb.Instance.of(settings, ipv6=IPV6)
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("restart"),
                           settings, instance) as (box, boot, secret):
        first_ip = instance.public_ip
        launch = box.boot(box.user_data(settings, boot))
        assert launch.status == "done", launch.output[-3000:]
        before = relayed(box, settings, secret)
        boot_log = box.root / "var/log/stun-infra-boot.log"
        log_before = boot_log.read_text()
        fetched_before = len(box.requests("downloads"))
        assert target_calls(box, "DeregisterTargets") == []
        powered_off = box.power_off()
        deregistered = target_calls(box, "DeregisterTargets")
        start = box.start(NEW_PUBLIC_IP)
        after = relayed(box, settings, secret)
        start_log = boot_log.read_text()[len(log_before):]
        fetched_during_start = box.requests("downloads")[fetched_before:]
        conf = (box.root / "etc/turnserver.conf").read_text()
        box.power_off()
        failed_start = box.start(UNCONFIGURED_PUBLIC_IP, imds=False, timeout=FAILED_START_WAIT)
        yield {"first_ip": first_ip, "before": before, "after": after, "start": start, "launch": launch,
               "powered_off": powered_off, "deregistered": deregistered, "conf": conf,
               "start_log": start_log, "box": box, "settings": settings,
               "fetched_during_start": fetched_during_start, "failed_start": failed_start,
               "configure_after_failed_start": box.unit_property("stun-infra-configure.service", "Result"),
               "configure_state_after_failed_start": box.unit_property("stun-infra-configure.service", "SubState"),
               "coturn_after_failed_start": box.unit_property("coturn.service", "ActiveState"),
               "coturn_condition": box.unit_property("coturn.service", "AssertResult")}


def relayed(box: sb.Sandbox, settings, secret: str) -> list:  # noqa: ANN001
    """The relayed address of a TURN allocation made from inside the namespace."""
    box.stun_binding(box.instance.private_ip, settings.stun_port)  # coturn is up
    return box.ns_python(f"""
import asyncio, json, os
from stun_infra.client import credentials, turn_client as tc
async def main():
    user, password = credentials.mint({secret!r}, user="restart-" + os.urandom(4).hex(), ttl_seconds=600)
    print(json.dumps(list(await tc.allocate(({box.instance.private_ip!r}, {settings.stun_port}), user, password))))
asyncio.run(main())
""")


def test_before_the_stop_the_relay_is_on_the_first_public_address(restarted):
    assert restarted["before"][0] == restarted["first_ip"] != NEW_PUBLIC_IP


def test_a_power_off_ends_the_machine_and_runs_the_units_exec_stop(restarted):
    """systemd stopped stun-nlb-targets.service at shutdown: its ExecStop took the instance's
    IPv6 address out of each IPv6 target group, signed with the role's credentials."""
    assert restarted["powered_off"] == 0
    expected = sorted((g.arn, [[IPV6, str(g.port)]]) for g in sb.ipv6_target_groups(restarted["settings"]))
    assert expected and restarted["deregistered"] == expected


def test_the_start_boots_without_running_the_user_data_again(restarted):
    start = restarted["start"]
    assert (start.status, start.system, start.failed_units) == ("done", "running", []), start.summary()
    assert restarted["launch"].script_ran and not start.script_ran


def test_configure_runs_at_the_start_as_a_unit_before_coturn(restarted):
    box = restarted["box"]
    assert f"public {NEW_PUBLIC_IP}," in restarted["start_log"]
    assert "stun-infra: boot complete" in restarted["start_log"]
    assert "stun-infra-configure.service" in box.systemctl("show", "-p", "After", "--value", "coturn.service").stdout


def test_after_a_start_with_a_new_public_ipv4_the_relay_is_on_the_new_address(restarted):
    assert restarted["after"][0] == NEW_PUBLIC_IP, restarted["after"]


def test_the_start_writes_the_new_address_into_coturns_config(restarted):
    conf = restarted["conf"]
    assert f"external-ip={NEW_PUBLIC_IP}/" in conf and restarted["first_ip"] not in conf


def test_the_start_downloads_nothing(restarted):
    """What is installed stays: the start is configure only (no package, no agent fetched)."""
    assert restarted["fetched_during_start"] == []
    assert "signature verified" not in restarted["start_log"]


def test_a_start_whose_configure_fails_does_not_start_coturn(restarted):
    """No metadata service during a start: configure fails, and systemd does not start coturn
    (its drop-in asserts the file only a successful configure writes in this start's /run)."""
    assert restarted["configure_after_failed_start"] == "exit-code"
    assert restarted["configure_state_after_failed_start"] in ("auto-restart", "failed")  # to run again
    assert restarted["coturn_after_failed_start"] in ("inactive", "failed")
    assert restarted["coturn_condition"] in ("no", "")  # refused, or still waiting behind configure
