"""The regions a stack deploys to: each one's settings, provider and look-ups, all made before
the first AWS resource of any region, so that a region's bad input stops the run first."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stun_infra.cloud.components.region import RegionGroup
from stun_infra.cloud.preflight import Lookups, look_up
from stun_infra.settings import Settings


@dataclass(frozen=True)
class RegionSetup:
    settings: Settings  # this region's (Settings.for_region)
    found: Lookups
    group: RegionGroup | None  # None: the home region

    @property
    def opts(self) -> pulumi.ResourceOptions | None:
        return self.group.opts() if self.group else None

    @classmethod
    def of(cls, settings: Settings, region: str) -> "RegionSetup":
        mine = settings.for_region(region)
        group = RegionGroup(mine.prefix, region) if mine.added_region else None
        return cls(settings=mine, found=look_up(mine, group.provider if group else None), group=group)


def regions_of(settings: Settings) -> list[RegionSetup]:
    """Every region's setup, the home region first."""
    return [RegionSetup.of(settings, region) for region in settings.deploy_regions]
