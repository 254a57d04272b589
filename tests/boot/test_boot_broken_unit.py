"""The boot check can fail: an instance package whose unit systemd rejects (an ExecStart with
an unbalanced quote: systemd ignores the line, then refuses a service without ExecStart)
fails the check the booted stacks pass (test_boot_script.assert_units_healthy)."""

from __future__ import annotations

import pytest

import boot_sandbox as sb
from stun_infra.instance import binding_counters
from test_boot_script import assert_units_healthy

pytestmark = pytest.mark.boot

UNIT = "stun-counters.service"


def test_a_unit_systemd_rejects_fails_the_boot_check(rootfs_cache, tmp_path, monkeypatch):
    from stun_infra.cloud.offline import stack_settings

    shipped = binding_counters.systemd_units

    def broken() -> dict[str, str]:
        units = shipped()
        assert "ExecStart=/usr/sbin/nft -f /" in units[UNIT]
        units[UNIT] = units[UNIT].replace("ExecStart=/usr/sbin/nft -f /", 'ExecStart=/usr/sbin/nft -f "/')
        return units

    monkeypatch.setattr(binding_counters, "systemd_units", broken)
    settings = stack_settings("dev", {"instanceType": "t3.small"})
    instance = sb.Instance.of(settings)
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path, settings,
                           instance) as (box, boot, _):
        launch = box.boot(box.user_data(settings, boot))
        with pytest.raises(AssertionError) as failed:
            assert_units_healthy(box, launch)
        print(failed.value)
        assert UNIT in str(failed.value) and box.unit_property(UNIT, "LoadState") == "bad-setting"
