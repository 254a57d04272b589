"""Arguments and error reporting that several commands share."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from stun_infra.client.targets import InputError
from stun_infra.common.text import printable
from stun_infra.settings import ConfigError, Settings

DEFAULT_STACK = "dev"
SECRET_ENV = "STUN_INFRA_TURN_SECRET"  # the TURN secret, for the commands that take one
# Said wherever a self-signed certificate serves turns:, since browsers refuse it.
SELF_SIGNED_NOTE = (
    "turns: is served with a self-signed certificate (no stun-infra:dnsZoneId/dnsName, no "
    "stun-infra:tlsCertificate). Browsers refuse a self-signed TURN certificate (Chromium: ICE error 701), "
    "so a browser gets relay candidates only from the turn: UDP and TCP URIs, listed first. Set dnsZoneId "
    "and dnsName for a certificate browsers trust, on 443 and 5349.")


def add_secret_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret", default=os.environ.get(SECRET_ENV) or None,
                   help=f"the stack's TURN shared secret (turn_shared_secret); default: ${SECRET_ENV}, "
                        "else the stack outputs on stdin")


def timeout_seconds(text: str) -> float:
    """--timeout: seconds, more than 0 and at most 60."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 60:
        raise InputError(f"--timeout {text!r}: expected seconds, more than 0 and at most 60, e.g. 3 or 0.5")
    return value


def add_stack_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default=DEFAULT_STACK,
                   help=f"stack whose Pulumi.<stack>.yaml to read (default: {DEFAULT_STACK})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (e.g. --set mode=autoscale); repeatable")


def overrides(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. --set instanceCount=3"])
        out[key.strip()] = value
    return out


def stack_settings(args: argparse.Namespace) -> Settings:
    """Settings for --stack and --set, validated exactly as `pulumi up` would."""
    from stun_infra.cloud.offline import stack_settings as settings_of

    return settings_of(args.stack, overrides(args))


# One `static-auth-secret=` line of visible ASCII. 256 is coturn's AUTH_SECRET_SIZE
# (ns_turn_defs.h); 4.6.1 was seen to take longer ones too, but nothing needs them.
MAX_TURN_SECRET = 256
_TURN_SECRET = re.compile(rf"[\x21-\x7e]{{1,{MAX_TURN_SECRET}}}")


def config_folder(path: Path, flag: str) -> Path:
    """A folder whose paths are written into turnserver.conf: one line of visible characters."""
    text = str(path.resolve())
    if any(not c.isprintable() for c in text):
        raise ConfigError([f"{flag}: got {printable(repr(str(path)))}, a path with a line break or control "
                           "character cannot be written into turnserver.conf; choose another folder"])
    return path


def turn_secret(value: str, flag: str) -> str:
    """A TURN secret for one config line; the message never shows it."""
    if not _TURN_SECRET.fullmatch(value):
        raise ConfigError([f"{flag}: must be 1-{MAX_TURN_SECRET} visible ASCII characters, no spaces or line "
                           f"breaks (a {len(value)}-character value was given; not shown)"])
    return value


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
