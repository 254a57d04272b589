"""The user data: a few lines of python3 (Debian 12's AMI has it; it has no AWS CLI) that
fetch this stack's instance package from its bucket with a SigV4-signed GET (the instance
role's credentials from IMDSv2), check its SHA-256, install it and run stun-infra-configure.

Everything else is in the package (stun_infra.instance.package). The user data carries no
secret and no per-stack file: the bucket, the object's key and digest, and, static mode, the
Elastic IP to wait for.
"""

from __future__ import annotations

import base64
import re

from stun_infra.instance.package import CONFIGURE_PATH, Package
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

MAX_USER_DATA_BYTES = 2048  # ours; EC2 takes 16 KB
# The download is retried this long, 5 s apart: IMDS or S3 not answering yet, or the role's
# policy not yet in effect (S3 answers 403).
FETCH_SECONDS = 300
# What may be printed into the script: S3's bucket name rules (no dots: the virtual-hosted
# TLS name must match *.s3.<region>.amazonaws.com), an IPv4 address.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"(\d{1,3}\.){3}\d{1,3}")


def render_user_data(settings: Settings, bucket: str, package: Package, expected_public_ip: str = "",
                     fetch_seconds: int = FETCH_SECONDS) -> str:
    if not BUCKET_NAME.fullmatch(bucket):
        raise ValueError(f"not an S3 bucket name without dots: {bucket!r}")
    if expected_public_ip and not _IPV4.fullmatch(expected_public_ip):
        raise ValueError(f"not an IPv4 address: {expected_public_ip!r}")
    text = render("user-data.py.j2", bucket=bucket, region=settings.region, sha256=package.sha256,
                  expected_public_ip=expected_public_ip, seconds=int(fetch_seconds), configure=CONFIGURE_PATH)
    if len(text.encode()) > MAX_USER_DATA_BYTES:
        raise ValueError(f"user data is {len(text.encode())} bytes; at most {MAX_USER_DATA_BYTES}")
    return text


def packed(script: str) -> str:
    """What EC2's API takes: base64 (no gzip: the script is small, and plain in the console)."""
    return base64.b64encode(script.encode()).decode()


def unpacked(payload: str) -> str:
    return base64.b64decode(payload).decode()
