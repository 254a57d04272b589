"""RegionGroup, built alone: an added region's provider, under its group."""

from stun_infra.cloud.components.region import RegionGroup
from tests.cloud.components.conftest import build_alone, component


def test_the_region_group_alone_holds_a_provider_for_its_region():
    run = build_alone(lambda: RegionGroup("alone-us-east-1", "us-east-1"))
    component(run, "stun-infra:region:RegionGroup")
    assert run.one("pulumi:providers:aws").inputs["region"] == "us-east-1"
