"""The offline engine answers zone and offering look-ups from AWS's own per-region data.

The vendored snapshot (stun_infra/data/) must equal what scripts/extract_aws_data.py
takes from the pinned moto and botocore; `plan` then refuses a region/type pair AWS
would refuse, as the real look-ups would on `pulumi up`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from stun_infra.cli import main
from stun_infra.cloud.offline import ZONES_FILE, offered_in, region_data, run_offline, stack_config
from stun_infra.settings import REGIONS_FILE, ConfigError

from ..conftest import inputs_of, program

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "extract_aws_data.py"


def extractor():
    spec = importlib.util.spec_from_file_location("extract_aws_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_vendored_zones_and_offerings_equal_motos_snapshot():
    x = extractor()
    assert ZONES_FILE.read_bytes() == x.gzip_json_bytes(x.zones()), \
        "stale snapshot: run .venv/bin/python scripts/extract_aws_data.py"


def test_the_vendored_instance_types_equal_motos_describe_instance_types_snapshot():
    from stun_infra.instance.conntrack import INSTANCE_TYPES_FILE

    x = extractor()
    assert INSTANCE_TYPES_FILE.read_bytes() == x.gzip_json_bytes(x.instance_types()), \
        "stale instance types: run .venv/bin/python scripts/extract_aws_data.py"


def test_the_vendored_regions_equal_botocores_endpoint_data():
    x = extractor()
    assert REGIONS_FILE.read_text() == x.regions_text(x.regions()), \
        "stale region list: run .venv/bin/python scripts/extract_aws_data.py"


def test_eu_west_3_has_its_three_real_zones_with_their_ids():
    assert region_data("eu-west-3").zones == (("eu-west-3a", "euw3-az1"), ("eu-west-3b", "euw3-az2"),
                                              ("eu-west-3c", "euw3-az3"))


def test_the_zone_lookup_answers_the_regions_real_zones():
    run = program(**{"aws:region": "ap-northeast-1"}, availabilityZones=3)
    assert sorted(s["availabilityZone"] for s in inputs_of(run, "aws:ec2/subnet:Subnet")) == [
        "ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]


def test_more_zones_than_the_real_region_has_is_refused():
    with pytest.raises(ConfigError, match="region eu-west-3 has 3 zones"):
        program(availabilityZones=4)


def test_a_type_offered_in_only_two_zones_gets_those_two():
    assert offered_in("eu-west-3", "c7gd.medium") == ("eu-west-3a", "eu-west-3b")
    run = program(instanceType="c7gd.medium")
    assert sorted(s["availabilityZone"] for s in inputs_of(run, "aws:ec2/subnet:Subnet")) == [
        "eu-west-3a", "eu-west-3b"]


def test_a_type_the_region_does_not_offer_is_refused_naming_instance_type():
    """Defect 2: the prod example asked for c7gn.medium, which eu-west-3 does not offer."""
    with pytest.raises(ConfigError) as caught:
        program(instanceType="c7gn.medium", mode="autoscale", availabilityZones=3, minSize=3,
                desiredCapacity=3, maxSize=12)
    assert caught.value.problems == [
        "stun-infra:instanceType: got c7gn.medium, which region eu-west-3 offers in 0 zones (none) "
        "but stun-infra:availabilityZones asks for 3; choose an instance type offered in enough zones"]


def test_a_misspelt_instance_type_is_refused_as_not_offered():
    with pytest.raises(ConfigError, match="got t4g.smal, which region eu-west-3 offers in 0 zones"):
        program(instanceType="t4g.smal")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_example_stack_plans_on_the_real_offering_data(stack, capsys):
    assert main(["plan", "--stack", stack]) == 0
    config, _ = stack_config(stack)
    instance_type = config["stun-infra:instanceType"]
    zones = int(config.get("stun-infra:availabilityZones", "2"))
    assert len(offered_in(config["aws:region"], instance_type)) >= zones


def test_plan_in_a_region_without_offering_data_says_how_to_ask_aws(capsys):
    assert main(["plan", "--set", "aws:region=mx-central-1"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: aws:region: the offline snapshot has no instance type offerings for mx-central-1; `plan` cannot "
        "tell which zones offer t4g.small. Ask AWS: aws ec2 describe-instance-type-offerings --location-type "
        "availability-zone --filters Name=instance-type,Values=t4g.small --region mx-central-1"]


def test_explicit_offered_zones_still_override_the_snapshot_for_zone_choice_tests():
    config, secret_keys = stack_config("dev")
    run = run_offline(config, stack="dev", secret_keys=secret_keys,
                      offered_zones={"t4g.small": ["eu-west-3b", "eu-west-3c"]})
    assert sorted(s["availabilityZone"] for s in inputs_of(run, "aws:ec2/subnet:Subnet")) == [
        "eu-west-3b", "eu-west-3c"]
