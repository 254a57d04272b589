"""`stun-infra plan`: the offline preview users run before `pulumi up`."""

from __future__ import annotations

import json

from stun_infra.cli import main


def test_plan_lists_resources_by_component_and_the_outputs(capsys):
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "stun-infra:network:Network  stun-infra-dev" in out
    assert "aws:ec2/instance:Instance" in out and "httpTokens=required" in out
    assert "Resources: " in out and "Outputs:" in out


def test_plan_masks_secret_outputs(capsys):
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert ["private_key_pem", "[secret]"] in lines and ["turn_shared_secret", "[secret]"] in lines
    assert "offline-placeholder-for-a-secret" not in out


def test_plan_json_is_machine_readable(capsys):
    assert main(["plan", "--stack", "prod", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outputs"]["mode"] == "autoscale" and doc["outputs"]["turn_shared_secret"] == "[secret]"
    assert {"type": "aws:autoscaling/group:Group", "name": "stun-infra-prod-asg",
            "component": "stun-infra:fleet:AutoscaleFleet", "region": "eu-west-3"} in doc["resources"]


def test_plan_applies_overrides(capsys):
    assert main(["plan", "--set", "instanceCount=4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["outputs"]["instance_ids"]) == 4


def test_plan_shows_config_errors_and_creates_nothing(capsys):
    assert main(["plan", "--set", "mode=blue"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: invalid stack config:\n")
    assert 'stun-infra:mode: got "blue", must be "static" or "autoscale"' in captured.err


def test_plan_refuses_a_malformed_override(capsys):
    assert main(["plan", "--set", "instanceCount"]) == 2
    assert "--set 'instanceCount': expected KEY=VALUE" in capsys.readouterr().err


def test_plan_says_browsers_refuse_the_self_signed_turns_certificate(capsys):
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "Note: turns: is served with a self-signed certificate" in out
    assert "Browsers refuse a self-signed TURN certificate (Chromium: ICE error 701)" in out


def test_plan_with_a_zone_shows_the_acm_certificate_and_tls_listeners_and_no_note(capsys):
    zone = ["--set", "dnsZoneId=Z0123456789ABCDEFGHIJ", "--set", "dnsName=turn.example.com"]
    assert main(["plan", "--stack", "prod", *zone]) == 0
    out = capsys.readouterr().out
    assert "domainName=turn.example.com validationMethod=DNS" in out
    assert "protocol=TLS port=443 sslPolicy=ELBSecurityPolicy-TLS13-1-2-2021-06" in out
    assert "Note:" not in out



THREE = '["eu-west-3","us-east-1","ap-southeast-1"]'


def test_plan_of_several_regions_groups_by_region_home_first_and_the_global_entry_last(capsys):
    assert main(["plan", "--set", f"regions={THREE}", "--set", "globalAccelerator=true"]) == 0
    out = capsys.readouterr().out
    headers = [line.split(":")[0] for line in out.splitlines() if line.startswith("== ")]
    assert headers == ["== eu-west-3 (home)", "== us-east-1", "== ap-southeast-1", "== global"]
    assert "stun-infra plan: stack dev, static mode, eu-west-3, us-east-1, ap-southeast-1 " in out


def test_plan_json_names_each_resources_region(capsys):
    assert main(["plan", "--set", f"regions={THREE}", "--set", "globalAccelerator=true", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    regions = {r["region"] for r in doc["resources"] if r["type"] == "aws:ec2/instance:Instance"}
    assert regions == {"eu-west-3", "us-east-1", "ap-southeast-1"}
    assert {r["region"] for r in doc["resources"] if r["type"].startswith("aws:globalaccelerator/")} == {"global"}
    assert doc["outputs"]["regions"]["us-east-1"]["region"] == "us-east-1"
