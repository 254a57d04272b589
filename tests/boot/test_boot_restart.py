"""A stopped and started instance: at every start stun-infra-configure.service re-reads the
instance's addresses from IMDS before coturn serves, so a new public IPv4 (autoscale
instances have no Elastic IP) is the one coturn announces and relays on.

One sandboxed autoscale TURN instance (x86_64) is booted by its user data, its services
started as at boot, then stopped and started with another public IPv4 in the metadata
stand-in; a TURN allocation then relays on the new address.
"""

from __future__ import annotations

import pytest

import boot_sandbox as sb

pytestmark = pytest.mark.boot

NEW_PUBLIC_IP = "198.51.100.77"
UNCONFIGURED_PUBLIC_IP = "198.51.100.78"


@pytest.fixture(scope="module")
def restarted(rootfs_cache, tmp_path_factory):
    from stun_infra.cloud.offline import stack_settings

    settings = stack_settings("prod", {"instanceType": "c7i.large", "ipv6": "false"})
    assert settings.autoscale and settings.turn
    instance = sb.Instance(region=settings.region, availability_zone=settings.region + "a",
                           instance_type=settings.instance_type)
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("restart"),
                           settings, instance) as (box, boot, secret):
        first_ip = instance.public_ip
        run = box.run_script(box.user_data(settings, boot))
        assert run.returncode == 0, "\n".join(line for _, line in run.lines[-40:])
        box.start_enabled_services()
        before = relayed(box, settings, secret)
        boot_log = box.root / "var/log/stun-infra-boot.log"
        log_before = boot_log.read_text()
        fetched_before = len(box.requests("downloads"))
        _, oneshots = box.stop_and_start(NEW_PUBLIC_IP)
        after = relayed(box, settings, secret)
        start_log = boot_log.read_text()[len(log_before):]
        fetched_during_start = box.requests("downloads")[fetched_before:]
        _, failed_oneshots = box.stop_and_start(UNCONFIGURED_PUBLIC_IP, imds=False)
        yield {"first_ip": first_ip, "before": before, "after": after, "oneshots": oneshots,
               "start_log": start_log, "box": box,
               "fetched_during_start": fetched_during_start,
               "failed_oneshots": failed_oneshots, "not_started": dict(box.not_started),
               "running_after_failed_start": box.running()}


def relayed(box: sb.Sandbox, settings, secret: str) -> list:  # noqa: ANN001
    """The relayed address of a TURN allocation made from inside the namespace."""
    box.stun_binding(box.instance.private_ip, settings.stun_port)  # coturn is up
    return box.ns_python(f"""
import asyncio, json
from stun_infra.client import credentials, turn_client as tc
async def main():
    user, password = credentials.mint({secret!r}, ttl_seconds=600)
    print(json.dumps(list(await tc.allocate(({box.instance.private_ip!r}, {settings.stun_port}), user, password))))
asyncio.run(main())
""")


def test_before_the_stop_the_relay_is_on_the_first_public_address(restarted):
    assert restarted["before"][0] == restarted["first_ip"] != NEW_PUBLIC_IP


def test_configure_runs_at_the_start_as_a_unit_before_coturn(restarted):
    assert restarted["oneshots"].get("stun-infra-configure.service") == 0, restarted["oneshots"]
    assert f"public {NEW_PUBLIC_IP}," in restarted["start_log"]
    assert "stun-infra: boot complete" in restarted["start_log"]


def test_after_a_start_with_a_new_public_ipv4_the_relay_is_on_the_new_address(restarted):
    assert restarted["after"][0] == NEW_PUBLIC_IP, restarted["after"]


def test_the_start_writes_the_new_address_into_coturns_config(restarted):
    conf = (restarted["box"].root / "etc/turnserver.conf").read_text()
    assert f"external-ip={NEW_PUBLIC_IP}/" in conf and restarted["first_ip"] not in conf


def test_the_start_downloads_nothing(restarted):
    """What is installed stays: the start is configure only (no package, no agent fetched)."""
    assert restarted["fetched_during_start"] == []
    assert "signature verified" not in restarted["start_log"]


def test_a_start_whose_configure_fails_does_not_start_coturn(restarted):
    assert restarted["failed_oneshots"].get("stun-infra-configure.service") not in (0, None), \
        restarted["failed_oneshots"]
    assert "coturn.service" in restarted["not_started"], restarted["not_started"]
    assert "coturn.service" not in restarted["running_after_failed_start"]
