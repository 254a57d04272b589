"""The instance package's bucket: only the stack's instance role reads the one object."""

from __future__ import annotations

import hashlib
import json

from stun_infra.cloud.components.artifact import BUCKET_PREFIX
from tests.support.debs import stored_package

BUCKET = "aws:s3/bucket:Bucket"


def test_the_bucket_blocks_every_kind_of_public_access(any_run):
    (block,) = [r.inputs for r in any_run.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")]
    assert {k: v for k, v in block.items() if k != "bucket"} == {
        "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True}


def test_the_bucket_encrypts_at_rest_and_so_does_the_object(any_run):
    (sse,) = [r.inputs for r in any_run.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")]
    assert sse["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    (obj,) = any_run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert obj.inputs["serverSideEncryption"] == "AES256"


def test_the_bucket_refuses_every_request_not_made_over_tls(any_run):
    (bucket,) = any_run.of_type(BUCKET)
    (policy,) = [json.loads(r.inputs["policy"]) for r in any_run.of_type("aws:s3/bucketPolicy:BucketPolicy")]
    (statement,) = policy["Statement"]
    arn = bucket.state["arn"]
    assert statement == {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                         "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_the_policy_waits_for_the_public_access_block(any_run):
    (block,) = any_run.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    (policy,) = any_run.of_type("aws:s3/bucketPolicy:BucketPolicy")
    assert block.urn in policy.dependencies


def test_the_bucket_name_is_a_fixed_length_prefix_and_s3s_suffix(any_run):
    (bucket,) = any_run.of_type(BUCKET)
    assert bucket.inputs["bucketPrefix"] == BUCKET_PREFIX and "bucket" not in bucket.inputs
    assert len(bucket.state["bucket"]) == len(BUCKET_PREFIX) + 26


def test_the_object_is_named_by_its_sha256(any_run):
    key, data = stored_package(any_run)
    assert key == hashlib.sha256(data).hexdigest()


def test_the_role_reads_exactly_the_package_object_and_nothing_else_in_s3(any_run):
    (bucket,) = any_run.of_type(BUCKET)
    key, _ = stored_package(any_run)
    (policy,) = [json.loads(r.inputs["policy"]) for r in any_run.of_type("aws:iam/rolePolicy:RolePolicy")
                 if r.name == "stun-infra-test-policy"]
    s3 = [s for s in policy["Statement"] if any(a.startswith("s3:") for a in s["Action"])]
    assert s3 == [{"Sid": "ReadOwnPackage", "Effect": "Allow", "Action": ["s3:GetObject"],
                   "Resource": f"{bucket.state['arn']}/{key}"}]


def test_instances_launch_only_once_the_package_is_stored(any_run):
    (obj,) = any_run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    launched = any_run.of_type("aws:ec2/instance:Instance") + any_run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert launched and all(obj.urn in r.dependencies for r in launched)
