"""Arguments and error reporting that several commands share."""

from __future__ import annotations

import argparse
import sys

from stun_infra.settings import ConfigError, Settings

DEFAULT_STACK = "dev"


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


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
