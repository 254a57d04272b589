"""Static mode with a Route 53 zone: coturn serves the stack's exportable ACM certificate.

templates/stun-tls-sync.sh.j2 exports it with the instance role (`aws acm
export-certificate`, a passphrase made on the instance for that one call), decrypts the
key with openssl, and installs certificate and key only when they changed; a running
coturn then reloads them on SIGUSR2 (4.6.1 does: checked against the real server), so
no session drops. The boot script runs it once; a daily timer runs it after, which
picks up ACM's renewal (60 days before expiry) without a `pulumi up`, and keeps the
certificate eligible for managed renewal (ACM renews an exported certificate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stun_infra.instance.coturn import INSTANCE_PATHS, CoturnPaths
from stun_infra.instance.templating import render

SCRIPT_PATH = "/usr/local/sbin/stun-tls-sync"
# What ACM returns (https://docs.aws.amazon.com/acm/latest/APIReference/API_ExportCertificate.html),
# narrowed to the partitions' names and ACM's id alphabet: it is written into a shell script.
ACM_ARN = re.compile(r"arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+")
UNITS = ("stun-tls-sync.service", "stun-tls-sync.timer")


@dataclass(frozen=True)
class TlsSyncFiles:
    script: str
    units: dict[str, str]
    script_path: str = SCRIPT_PATH
    enable: str = UNITS[1]


def script(certificate_arn: str, paths: CoturnPaths = INSTANCE_PATHS, owner: str = "turnserver") -> str:
    """The sync script; `paths` and `owner` differ only in tests."""
    if not ACM_ARN.fullmatch(certificate_arn):
        raise ValueError(f"not an ACM certificate ARN: {certificate_arn!r}")
    return render("stun-tls-sync.sh.j2", certificate_arn=certificate_arn, cert=paths.cert, key=paths.key,
                  owner=owner)


def boot_files(certificate_arn: str) -> TlsSyncFiles:
    return TlsSyncFiles(script=script(certificate_arn),
                        units={unit: render(f"{unit}.j2", script_path=SCRIPT_PATH) for unit in UNITS})
