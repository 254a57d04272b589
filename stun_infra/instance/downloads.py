"""The `agents` stage: what the instance downloads, from where AWS documents it, and the key that signs it.

Written once here, with the page that documents each location beside it; the template
renders these values and tests/instance/test_downloads.py holds the rendered script to
them (no other host appears). The boot script verifies each .deb before dpkg sees it:
gpgv against the publisher's key, and gpgv's VALIDSIG line must name the primary key
fingerprint pinned here (so a swapped key file fails as surely as a tampered package).
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stun_infra.instance.stage import Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

# IMDSv2: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
IMDS_URL = "http://169.254.169.254/latest"

# Each download is retried with backoff (2 s doubling, at most 30 s apart) while this
# many seconds have not passed: a bucket that is down for a while does not end the boot.
DOWNLOAD_SECONDS = 300


@dataclass(frozen=True)
class SigningKey:
    """The publisher's OpenPGP key: fetched from the documented `url`, or embedded as
    `keyring` (a binary keyring, base64) when the documentation prints the key itself."""

    fingerprint: str  # of the primary key, 40 hex digits, as the documentation prints it
    url: str = ""
    keyring: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9A-F]{40}", self.fingerprint):
            raise ValueError(f"signing key fingerprint must be 40 upper-case hex digits, got {self.fingerprint!r}")
        if bool(self.url) == bool(self.keyring):
            raise ValueError("a signing key has exactly one of url and keyring")


@dataclass(frozen=True)
class AgentPackage:
    """A .deb the boot script installs from AWS. `url` holds {region} and {arch}, filled in
    on the instance (IMDS region, `dpkg --print-architecture`); the signature is `url`.sig."""

    name: str
    url: str
    key: SigningKey
    documented_at: tuple[str, ...]

    @property
    def sig_url(self) -> str:
        return self.url + ".sig"


def dearmor(armored: str) -> bytes:
    """The binary packets of an ASCII-armored OpenPGP block (RFC 4880 section 6), its CRC24
    checked: gpgv (2.2) reads binary keyrings only."""
    lines = [line.strip() for line in armored.strip().splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP"))
        end = next(i for i, line in enumerate(lines) if line.startswith("-----END PGP"))
        blank = lines.index("", start)  # armor headers end at the first empty line
    except (StopIteration, ValueError):
        raise ValueError("not an ASCII-armored OpenPGP block") from None
    body = [line for line in lines[blank + 1:end] if line]
    checksum = body.pop() if body and body[-1].startswith("=") else ""
    data = base64.b64decode("".join(body), validate=True)
    if checksum and base64.b64decode(checksum[1:]) != _crc24(data).to_bytes(3, "big"):
        raise ValueError("armor checksum does not match")
    return data


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def primary_fingerprint(keyring: bytes) -> str:
    """The v4 fingerprint (RFC 4880 section 12.2) of the first public-key packet."""
    ctb = keyring[0]
    if ctb & 0x40:  # new-format packet header
        tag, length, offset = ctb & 0x3F, keyring[1], 2
        if 192 <= length < 224:
            length, offset = ((length - 192) << 8) + keyring[2] + 192, 3
        elif length == 255:
            length, offset = int.from_bytes(keyring[2:6], "big"), 6
    else:
        tag, kind = (ctb >> 2) & 0x0F, ctb & 0x03
        size = {0: 1, 1: 2, 2: 4}[kind]
        length, offset = int.from_bytes(keyring[1:1 + size], "big"), 1 + size
    if tag != 6 or keyring[offset] != 4:
        raise ValueError("the keyring does not start with a version 4 public key")
    body = keyring[offset:offset + length]
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()


def embedded_key(armored: str, fingerprint: str) -> SigningKey:
    """A key printed in the documentation, checked against its documented fingerprint."""
    keyring = dearmor(armored)
    found = primary_fingerprint(keyring)
    if found != fingerprint:
        raise ValueError(f"embedded key has fingerprint {found}, expected {fingerprint}")
    return SigningKey(fingerprint=fingerprint, keyring=base64.b64encode(keyring).decode())


# The SSM agent's signing key, as printed on
# https://docs.aws.amazon.com/systems-manager/latest/userguide/verify-agent-signature.html
# (the same block AWS embeds in amazon-ssm-agent's own verifier,
# agent/setupcli/managers/verificationmanagers/linux_public_key_helper.go). That page gives
# the key only in its text, no download location. This copy's self-signature says it
# expired 2025-02-17; gpgv still reports such a signature as VALIDSIG (EXPKEYSIG, exit 0),
# and the fingerprint, not the date, is what is pinned.
SSM_AGENT_KEY_ARMORED = """\
-----BEGIN PGP PUBLIC KEY BLOCK-----

mQENBGTtIoIBCAD2M1aoGIE0FXynAHM/jtuvdAVVaX3Q4ZejTqrX+Jq8ElAMhxyO
GzHu2CDtCYxtVxXK3unptLVt2kGgJwNbhYC393jDeZx5dCda4Nk2YXX1UK3P461i
axuuXRzMYvfM4RZn+7bJTu635tA07q9Xm6MGD4TCTvsjBfViOxbrxOg5ozWbJdSw
fSR8MwUrRfmFpAefRlYfCEuZ8FHywa9U6jLeWt2O/kqrZliJOAGjGzXtB7EZkqKb
faCCxikjjvhF1awdEqSK4DQorC/OvQc4I5kP5y2CJbtXvXO73QH2yE75JMDIIx9x
rOsIRUoSfK3UrWaOVuAnEEn5ueKzZNqGG1J1ABEBAAG0J1NTTSBBZ2VudCA8c3Nt
LWFnZW50LXNpZ25lckBhbWF6b24uY29tPokBPwQTAQIAKQUCZO0iggIbLwUJAsaY
gAcLCQgHAwIBBhUIAgkKCwQWAgMBAh4BAheAAAoJELwfSVyX3QTt+icH/A//tJsW
I+7Ay8FGJh8dJPNy++HIBjVSFdGNJFWNbw1Z8uZcazHEcUCH3FhW4CLQLTZ3OVPz
qvFwzDtRDVIN/Y9EGDhLMFvimrE+/z4olWsJ5DANf6BnX8I5UNIcRt5d8SWH1BEJ
2FWIBZFgKyTDI6XzRC5x4ahtgpOVAGeeKDehs+wh6Ga4W0/K4GsviP1Kyr+Ic2br
NAIq0q0IHyN1q9zam3Y0+jKwEuNmTj+Bjyzshyv/X8S0JWWoXJhkexkOvWeBYNNt
5wI4QcSteyfIzp6KlQF8q11Hzz9D9WaPfcBEYyhq7vLEARobkbQMBzpkmaZua241
0RaWG50HRvrgm4aJAhwEEAECAAYFAmTtIoMACgkQfdCXo9rX9fwwqBAAzkTgYJ38
sWgxpn7Ux/81F2BWR1sVkmP79i++fXyJlKI8xtcJFQZhzeUos69KBUCy7mgx5bYU
P7NA5o9DUbwz/QS0i1Cqm4+jtFlX0MXe4FikXcqfDPnnzN8mVB2H+fa43iHR1PuH
GgUWuNdxzSoIYRmLZXWmeN5YXPcmixlhLzcE2TOQn1mOKcu2fKdLtBQ8KiEkmjiu
naoLxnUcyk1zMhaha+LzEkQdOyasix0ggylN2ViWVnlmfy0niuXDxW0qZWPdLStF
OODiX3iqGmkH3rDfy6nvxxBR4GIs+MGD72fpWzzrINDgkGI2i2t1+0AX/mps3aTy
+ftlgrim8stYWB58XXDAb0vad06sNye5/zDzfr0I9HupJrTzFhaYJQjWPaSlINto
LDJnBXohiUIPRYRcy/k012oFHDWZHT3H6CyjK9UD5UlxA9H7dsJurANs6FOVRe+7
34uJyxDZ/W7zLG4AVG0zxibrUSoaJxwcOjVPVsQAlrwG/GTs7tcAccsJqbJ1Py/w
9AgJl8VU2qc8POsHNXk348gjP7C8PDnGMpZFzr9f5INctRushpiv7onX+aWJVX7T
n2uX/TP3LCyH/MsrNJrJOQnMYFRLQitciP0E+F+eA3v9CY6mDuyb8JSx5HuGGUsG
S4bKBOcA8vimEpwPoT8CE7fdsZ3Qkwdu+pw=
=zr5w
-----END PGP PUBLIC KEY BLOCK-----
"""

CLOUDWATCH_AGENT = AgentPackage(
    name="amazon-cloudwatch-agent",
    # The regional bucket (the download stays in the instance's region), Debian build.
    url="https://amazoncloudwatch-agent-{region}.s3.{region}.amazonaws.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb",
    # Fingerprint "9376 16F3 450B 7D80 6CBD 9725 D581 6730 3B78 9C72"; the key file is
    # published under assets/ of the global bucket.
    key=SigningKey(fingerprint="937616F3450B7D806CBD9725D58167303B789C72",
                   url="https://amazoncloudwatch-agent.s3.amazonaws.com/assets/amazon-cloudwatch-agent.gpg"),
    documented_at=(
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/download-CloudWatch-Agent-on-EC2-Instance-commandline-first.html",
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/verify-CloudWatch-Agent-Package-Signature.html",
    ),
)

# The unprivileged user the CloudWatch agent's .deb creates (its preinst: `useradd -r ... cwagent`,
# https://github.com/aws/amazon-cloudwatch-agent/blob/main/packaging/debian/preinst) and AWS
# documents for its `run_as_user` ("use the default user named cwagent that the RPM or DEB file
# created": https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-common-scenarios.html#CloudWatch-Agent-run-as-user).
# The agent starts as root, gives its own directories to that user, then drops to it (setgroups
# from /etc/group, setgid, setuid) before it reads anything it ships.
CLOUDWATCH_AGENT_USER = "cwagent"

SSM_AGENT = AgentPackage(
    name="amazon-ssm-agent",
    # Debian AMIs ship no SSM agent; the regional bucket, Debian build (debian_amd64, debian_arm64).
    url="https://s3.{region}.amazonaws.com/amazon-ssm-{region}/latest/debian_{arch}/amazon-ssm-agent.deb",
    key=embedded_key(SSM_AGENT_KEY_ARMORED, "DE92C7DA3E56E92331D62A36BC1F495C97DD04ED"),
    documented_at=(
        "https://docs.aws.amazon.com/systems-manager/latest/userguide/agent-install-deb.html",
        "https://docs.aws.amazon.com/systems-manager/latest/userguide/verify-agent-signature.html",
    ),
)

AGENTS = (CLOUDWATCH_AGENT, SSM_AGENT)


# The stack's own package bucket, by its virtual-hosted-style name (the user data signs the
# GET for it, SigV4, with the instance role).
PACKAGE_HOST = "{bucket}.s3.{region}.amazonaws.com"


def documented_hosts(agents: tuple[AgentPackage, ...] = AGENTS) -> dict[str, str]:
    """Every host the instance fetches from (with {region} and {bucket} left in), and a page
    that documents it."""
    hosts = {urllib.parse.urlsplit(IMDS_URL).hostname or "":
             "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html",
             PACKAGE_HOST: "https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html"}
    for agent in agents:
        for url in (agent.url, agent.key.url):
            if url:
                hosts[urllib.parse.urlsplit(url).hostname or ""] = agent.documented_at[-1]
    return hosts


def stage(settings: Settings, boot: "BootInputs") -> Stage:
    """Install each agent unless it is installed (a restart downloads nothing)."""
    return Stage("agents", script=render("stages/agents.sh.j2", boot=boot))
