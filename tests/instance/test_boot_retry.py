"""A configure that gives up says so: the give-up reporter run by bash against stand-in `curl`
(IMDS) and `aws`, and the units as the host's `systemd-analyze verify` reads them. How systemd
runs a failed configure again, and what a failed first run hands over to it, run on the booted
machine: tests/boot/test_boot_script.py and test_boot_downloads.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from stun_infra.instance import metrics, package

from tests.conftest import boot_inputs, settings
from tests.support.systemd import verify_units


def test_configure_and_its_failure_report_units_are_valid(tmp_path):
    readable = {name: text.replace(package.CONFIGURE_PATH, "/bin/true").replace(package.BOOT_FAILED_SCRIPT, "/bin/true")
                for name, text in package.configure_units(boot_inputs()[1]).items()}
    assert verify_units(tmp_path, readable) == ""


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
