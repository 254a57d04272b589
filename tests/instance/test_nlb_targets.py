"""The instance's registration in the load balancer's IPv6 target groups (autoscale, dual stack)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from stun_infra.instance import nlb_targets
from stun_infra.instance.nlb_targets import TargetGroupPort
from stun_infra.instance import package
from stun_infra.instance.boot_inputs import BootInputs, ParameterNames
from stun_infra.instance.stage import UNIT_DIR

from tests.conftest import settings
from tests.support.systemd import verify_units

GROUPS = (TargetGroupPort("arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/stun-infra-dev-stun-v6/"
                          "0123456789abcdef", 3478),
          TargetGroupPort("arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/stun-infra-dev-tls-v6/"
                          "fedcba9876543210", 5349))


def _shellcheck(tmp_path, name: str, text: str) -> None:
    if not shutil.which("shellcheck"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run shellcheck (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed")
    path = tmp_path / name
    path.write_text(text)
    result = subprocess.run(["shellcheck", "--severity=info", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def _boot() -> tuple:
    s = settings(mode="autoscale")
    return s, BootInputs(ParameterNames.under(s.ssm_path, s.turn), ipv6_target_groups=GROUPS)


def _configure() -> str:
    return package.configure_script(*_boot())


def _files() -> dict[str, str]:
    return {f.path: f.text for f in package.instance_files(*_boot())}


def test_the_registration_script_is_shellcheck_clean(tmp_path):
    _shellcheck(tmp_path, "stun-nlb-targets", nlb_targets.script(list(GROUPS)))


def test_configure_with_registration_is_shellcheck_clean(tmp_path):
    _shellcheck(tmp_path, "stun-infra-configure", _configure())


def test_registration_runs_only_when_the_instance_has_an_ipv6_address():
    script = _configure()
    begin = script.index("\nstage nlb-ipv6\n")
    block = script[begin:script.index("\nstage ", begin + 1)]
    assert 'if [ -n "${IPV6}" ]; then' in block and "\nrestart stun-nlb-targets.service\n" in block
    assert block.index("if [") < block.index("systemctl enable") < block.index("\nfi\n")


def test_the_unit_registers_on_start_and_deregisters_on_stop():
    unit = _files()[f"{UNIT_DIR}/{nlb_targets.UNIT}"]
    assert f"ExecStart={nlb_targets.SCRIPT_PATH} register" in unit
    assert f"ExecStop={nlb_targets.SCRIPT_PATH} deregister" in unit
    assert "After=network-online.target coturn.service" in unit  # stopped before the network goes


def test_the_registration_unit_is_valid(tmp_path):
    """How systemd retries it (without end) as it reads it: tests/boot/test_boot_script.py."""
    unit = _files()[f"{UNIT_DIR}/{nlb_targets.UNIT}"]
    units = {nlb_targets.UNIT: unit.replace(nlb_targets.SCRIPT_PATH, "/bin/true")}
    assert verify_units(tmp_path, units) == ""


def test_the_script_registers_the_address_on_each_group_port():
    script = _files()[nlb_targets.SCRIPT_PATH]
    for group in GROUPS:
        assert f'--target-group-arn "{group.arn}" \\\n        --targets "Id=${{IPV6}},Port={group.port}"' in script


@pytest.mark.parametrize("arn", ['arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/x/1"; reboot; "',
                                 "arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/x/1\nreboot",
                                 "not-an-arn"])
def test_a_value_that_is_not_a_target_group_arn_never_reaches_the_script(arn):
    with pytest.raises(ValueError):
        nlb_targets.script([TargetGroupPort(arn, 3478)])
