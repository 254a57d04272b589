"""Static mode with a Route 53 zone: coturn serves the stack's exportable ACM certificate.

templates/stun-tls-sync.sh.j2 exports it with the instance role (`aws acm
export-certificate`, a passphrase made on the instance for that one call), decrypts the
key with openssl, and installs certificate and key only when they changed; a running
coturn then reloads them on SIGUSR2 (4.6.1 does: checked against the real server), so
no session drops. The `tls-sync` stage runs it once; a daily timer runs it after, which
picks up ACM's renewal (60 days before expiry) without a `pulumi up`, and keeps the
certificate eligible for managed renewal (ACM renews an exported certificate).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from stun_infra.instance.coturn import INSTANCE_PATHS, CoturnPaths
from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

SCRIPT_PATH = "/usr/local/sbin/stun-tls-sync"
# What ACM returns (https://docs.aws.amazon.com/acm/latest/APIReference/API_ExportCertificate.html),
# narrowed to the partitions' names and ACM's id alphabet: it is written into a shell script.
ACM_ARN = re.compile(r"arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+")
UNITS = ("stun-tls-sync.service", "stun-tls-sync.timer")


def script(certificate_arn: str, paths: CoturnPaths = INSTANCE_PATHS, owner: str = "turnserver") -> str:
    """The sync script; `paths` and `owner` differ only in tests."""
    if not ACM_ARN.fullmatch(certificate_arn):
        raise ValueError(f"not an ACM certificate ARN: {certificate_arn!r}")
    return render("stun-tls-sync.sh.j2", certificate_arn=certificate_arn, cert=paths.cert, key=paths.key,
                  owner=owner)


def systemd_units(script_path: str = SCRIPT_PATH) -> dict[str, str]:
    """The sync's service (a private /tmp for the decrypted key) and its daily timer."""
    return {unit: render(f"{unit}.j2", script_path=script_path) for unit in UNITS}


def stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    """Static mode with ACM: the sync program, run once now (coturn needs its files), then daily."""
    if not settings.tls.acm_export:
        return None
    return Stage("tls-sync", files=(InstanceFile(SCRIPT_PATH, script(boot.certificate_arn), 0o755),),
                 units=systemd_units(),
                 enable=(UNITS[1],), script=f'retry 10 6 "{SCRIPT_PATH}"\n')
