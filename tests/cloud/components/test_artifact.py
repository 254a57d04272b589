"""InstancePackage, built alone: the object is named by the digest it is given."""

from stun_infra.cloud.components.artifact import InstancePackage, PackageArgs
from tests.cloud.components.conftest import TAGS, build_alone, component

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_the_package_alone_is_stored_under_its_digest():
    run = build_alone(lambda: InstancePackage("alone", PackageArgs(content_base64="dGVzdA==", key=DIGEST, tags=TAGS)))
    component(run, "stun-infra:artifact:InstancePackage")
    assert DIGEST in run.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs["key"]
