"""Region: an added region's group. Its resources sit under it, and its AWS provider (for that
region) reaches every one of them through it. The home region has none: its resources keep the
default provider and the names a one-region stack has."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from stun_infra.common.project import PROJECT


class RegionGroup(pulumi.ComponentResource):
    provider: aws.Provider

    def __init__(self, name: str, region: str):
        super().__init__(f"{PROJECT}:region:RegionGroup", name, None, None)
        self.provider = aws.Provider(name, region=region, opts=pulumi.ResourceOptions(parent=self))
        self.region = region
        self.register_outputs({"region": region})

    def opts(self) -> pulumi.ResourceOptions:
        """For each component of the region: under the group, with the region's provider."""
        return pulumi.ResourceOptions(parent=self, providers=[self.provider])
