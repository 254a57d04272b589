"""A configure that fails is run again by systemd, and one that gives up says so: the rendered
units as the host's systemd reads them, the configure script's hand-over (a failed run outside
its unit, the user data's first one) run by bash against a stand-in `systemctl`, and the
give-up reporter run by bash against stand-in `curl` (IMDS) and `aws`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stun_infra.instance import metrics, package
from stun_infra.instance.services import CONFIGURE_UNIT
from stun_infra.instance.stage import unit_settings

from tests.conftest import boot_inputs, configure_script, settings
from tests.support.systemd import verify_units

RECORDER = """#!/bin/bash
printf '%s\\n' "$*" >> "{log}"
"""


def units() -> dict[str, str]:
    return package.configure_units(boot_inputs()[1])


def test_a_failed_configure_is_run_again_until_systemd_gives_up_then_reported(tmp_path):
    unit = units()[CONFIGURE_UNIT]
    head, service = unit_settings(unit, "Unit"), unit_settings(unit, "Service")
    assert service["Restart"] == ["on-failure"] and service["RestartSec"] == [str(package.CONFIGURE_RESTART_SECONDS)]
    assert service["RestartPreventExitStatus"] == [str(package.BOOT_STOPPED_STATUS)]
    assert head["StartLimitBurst"] == [str(package.CONFIGURE_ATTEMPTS)]
    assert head["OnFailure"] == [package.BOOT_FAILED_UNIT]
    # every run (up to its timeout) and every pause fit in the interval: the limit is reached
    assert int(head["StartLimitIntervalSec"][0]) > package.CONFIGURE_ATTEMPTS * (
        int(service["TimeoutStartSec"][0]) + package.CONFIGURE_RESTART_SECONDS)
    readable = {name: text.replace(package.CONFIGURE_PATH, "/bin/true").replace(package.BOOT_FAILED_SCRIPT, "/bin/true")
                for name, text in units().items()}
    assert verify_units(tmp_path, readable) == ""


def hand_over(tmp_path: Path, status: int, **env: str) -> list[str]:
    script = configure_script()
    function = script[script.index("hand_over() {"):script.index("\n}\n", script.index("hand_over() {")) + 3]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "systemctl.log"
    (bin_dir / "systemctl").write_text(RECORDER.format(log=log))
    (bin_dir / "systemctl").chmod(0o755)
    done = subprocess.run(["bash", "-c", f"{function}\ntrap hand_over EXIT\nexit {status}"], capture_output=True,
                          text=True, timeout=30, env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env})
    assert done.returncode == status, done
    return log.read_text().splitlines() if log.exists() else []


def test_the_user_datas_failed_run_hands_over_to_systemd(tmp_path):
    assert hand_over(tmp_path, 1) == [f"enable --quiet {CONFIGURE_UNIT}", f"--no-block start {CONFIGURE_UNIT}"]


def test_a_boot_stopped_for_good_is_reported_not_retried(tmp_path):
    assert hand_over(tmp_path, package.BOOT_STOPPED_STATUS) == [
        f"enable --quiet {CONFIGURE_UNIT}", f"--no-block start {package.BOOT_FAILED_UNIT}"]


@pytest.mark.parametrize("status, env", [(0, {}), (1, {"STUN_INFRA_CONFIGURE_UNIT": "1"})],
                         ids=["succeeded", "under-its-unit"])
def test_nothing_is_handed_over_after_success_or_under_the_unit(tmp_path, status, env):
    assert hand_over(tmp_path, status, **env) == []


FAKE_CURL = """#!/bin/bash
case "$*" in
  *api/token*) echo token ;;
  *meta-data/instance-id*) echo "{instance}" ;;
  *meta-data/placement/region*) echo eu-west-3 ;;
  *) exit 22 ;;
esac
"""
FAKE_AWS = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["AWS_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def report_failure(tmp_path: Path, instance: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("curl", FAKE_CURL.format(instance=instance)), ("aws", FAKE_AWS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "stun-boot-failed"
    script.write_text(package.boot_failed_script(settings()))
    log = tmp_path / "aws.log"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "AWS_LOG": str(log)})
    return done, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_giving_up_publishes_boot_failed_for_the_instance_and_the_fleet(tmp_path):
    done, calls = report_failure(tmp_path, "i-0123456789abcdef0")
    assert done.returncode == 0, done.stderr
    (argv,) = calls
    assert argv[:6] == ["cloudwatch", "put-metric-data", "--region", "eu-west-3", "--namespace",
                        metrics.namespace("test")]
    data = json.loads(argv[argv.index("--metric-data") + 1])
    assert data == [{"MetricName": metrics.BOOT_FAILED, "Value": 1, "Unit": "Count",
                     "Dimensions": [{"Name": metrics.INSTANCE_DIMENSION, "Value": "i-0123456789abcdef0"}]},
                    {"MetricName": metrics.BOOT_FAILED, "Value": 1, "Unit": "Count"}]


def test_metadata_that_is_not_an_instance_id_never_reaches_the_metric(tmp_path):
    done, calls = report_failure(tmp_path, 'i-1", "Value": 0}]')
    assert done.returncode != 0 and calls == []
