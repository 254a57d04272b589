"""`render` checks its flags against the stack, not only their form: what it writes must be
what an instance of that stack could run, and nothing lands where it was not asked to go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stun_infra.cli import main

TG = "arn:{partition}:elasticloadbalancing:{region}:123456789012:targetgroup/stun-infra-dev-stun-v6/0123456789abcdef"
ACM = "arn:{partition}:acm:{region}:123456789012:certificate/0123abcd-0000-4000-8000-000000000000"
AUTOSCALE = ["--set", "mode=autoscale"]
ZONE = ["--set", "dnsZoneId=Z0123456789ABCDEFGHIJ", "--set", "dnsName=turn.example.com"]


def refused(capsys, *args: str) -> str:
    """The one `error:` line of a render that exits 2."""
    assert main(["render", *args]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


def test_an_ipv6_target_group_on_a_port_the_stack_does_not_load_balance_is_refused(tmp_path, capsys):
    group = TG.format(partition="aws", region="eu-west-3")
    line = refused(capsys, "--out", str(tmp_path / "out"), *AUTOSCALE, "--ipv6-target-group", f"{group}=9999")
    assert line == ("error: --ipv6-target-group: got port 9999, which this stack's load balancer does not send to; "
                    "its target groups use 3478, 5349")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("partition, region", [("aws", "us-east-1"), ("aws-cn", "eu-west-3")])
def test_an_ipv6_target_group_of_another_region_or_partition_is_refused(tmp_path, capsys, partition, region):
    group = TG.format(partition=partition, region=region)
    line = refused(capsys, "--out", str(tmp_path / "out"), *AUTOSCALE, "--ipv6-target-group", f"{group}=3478")
    assert f"an ARN of {partition}/{region}; this stack is in aws/eu-west-3" in line


def test_a_certificate_arn_of_another_region_is_refused(tmp_path, capsys):
    arn = ACM.format(partition="aws", region="us-east-1")
    line = refused(capsys, "--out", str(tmp_path / "out"), *ZONE, "--certificate-arn", arn)
    assert line.startswith("error: --certificate-arn: got ") and "an ARN of aws/us-east-1" in line


def test_ipv6_for_a_stack_without_ipv6_is_refused(tmp_path, capsys):
    line = refused(capsys, "--out", str(tmp_path / "out"), "--set", "ipv6=false", "--ipv6", "2001:db8::10")
    assert line.startswith("error: --ipv6: this stack has stun-infra:ipv6 false")


def test_an_empty_out_writes_nothing_into_the_current_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = refused(capsys, "--out", "")
    assert line.startswith("error: --out: got '', must name a folder")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("version", ["0", "-1"])
def test_a_parameter_version_below_one_is_refused(tmp_path, capsys, version):
    line = refused(capsys, "--out", str(tmp_path / "out"), "--parameter-version", version)
    assert line == f"error: --parameter-version: got {version}, must be a parameter version, 1 or more"
    assert not Path(tmp_path / "out").exists()
