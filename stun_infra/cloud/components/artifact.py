"""The instance package's home: a bucket of this stack that only its instance role reads.

Public access blocked (all four settings), TLS-only bucket policy, server-side encryption
(SSE-S3: no key policy to grant), and the package as one object named by its SHA-256. The
role's read is granted in access.py on exactly this object's ARN.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT

# S3 appends a 26-character unique suffix to a prefix: the name is always 37 characters,
# which the user data's size bound counts on (stun_infra.instance.userdata).
BUCKET_PREFIX = "stun-infra-"
BUCKET_NAME_LENGTH = len(BUCKET_PREFIX) + 26
CONTENT_TYPE = "application/vnd.debian.binary-package"


def tls_only_policy(bucket_arn: str) -> str:
    """Refuse every request not made over TLS (AWS: "Enforce encryption of data in transit",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                       "Resource": [bucket_arn, f"{bucket_arn}/*"],
                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}}],
    }, indent=2)


@dataclass(frozen=True)
class PackageArgs:
    content_base64: pulumi.Input[str]  # the .deb
    key: pulumi.Input[str]             # its SHA-256, hex
    tags: dict[str, str]


class InstancePackage(pulumi.ComponentResource):
    """The bucket, its guards and the package object."""

    def __init__(self, name: str, args: PackageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:artifact:InstancePackage", name, None, opts)
        self.bucket = aws.s3.Bucket(f"{name}-pkg", bucket_prefix=BUCKET_PREFIX, force_destroy=True,
                                    tags=tagged(args.tags, f"{name}-pkg"), opts=child_opts(self))
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-pkg", bucket=self.bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child_opts(self))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-pkg", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"))],
            opts=child_opts(self))
        aws.s3.BucketPolicy(f"{name}-pkg", bucket=self.bucket.id, policy=self.bucket.arn.apply(tls_only_policy),
                            opts=child_opts(self, depends_on=[block]))
        self.object = aws.s3.BucketObjectv2(
            f"{name}-pkg", bucket=self.bucket.id, key=args.key, content_base64=args.content_base64,
            content_type=CONTENT_TYPE, server_side_encryption="AES256",
            opts=child_opts(self))
        self.bucket_name = self.bucket.bucket
        self.object_key = self.object.key  # launches that name it wait for the upload
        self.object_arn = pulumi.Output.concat(self.bucket.arn, "/", self.object.key)
        self.register_outputs({"bucket": self.bucket_name, "object_arn": self.object_arn})
