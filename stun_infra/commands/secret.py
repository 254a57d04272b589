"""`stun-infra secret rotate|finish|status`: rotate the TURN REST secret without dropping a call.

A rotation is two `pulumi up`s, each after one of these commands, which only drive `pulumi
config` for the stack (secrets travel on pulumi's stdin, never on a command line):
  rotate   the current secret becomes turnSecretPrevious, a new random one (or
           $STUN_INFRA_NEW_TURN_SECRET) becomes turnSecret, turnSecretRotatedAt is now.
           After `pulumi up` servers accept both, apps sign with the new one.
  finish   once the overlap has passed (the longest recommended credential lifetime plus the
           time apps take to read the new secret), turnSecretPrevious and turnSecretRotatedAt
           are removed. After `pulumi up` servers accept only the new secret.
  status   which step the stack is at, and when `finish` is allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
from datetime import datetime, timedelta, timezone

from stun_infra.commands.common import DEFAULT_STACK, fail
from stun_infra.common.project import PROJECT, PROJECT_ROOT
from stun_infra.common.text import printable
from stun_infra.settings import APP_SECRET_SETTLE, TURN_SECRET_OVERLAP, rotation_started, turn_secret_problem

NEW_SECRET_ENV = "STUN_INFRA_NEW_TURN_SECRET"
NEW_SECRET_BYTES = 36  # token_urlsafe: 48 characters of [A-Za-z0-9_-]
PULUMI_TIMEOUT = 120
CURRENT, PREVIOUS, ROTATED_AT = (f"{PROJECT}:{k}" for k in ("turnSecret", "turnSecretPrevious",
                                                             "turnSecretRotatedAt"))
STAMP = "%Y-%m-%dT%H:%M:%SZ"


class RotationError(Exception):
    """A step refused; the message is the one `error:` line."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("secret", help="rotate the TURN secret: rotate, pulumi up, wait the overlap, finish, pulumi up",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("rotate", "finish", "status"))
    p.add_argument("--stack", default=DEFAULT_STACK, help=f"the stack (default: {DEFAULT_STACK})")
    p.set_defaults(run=run)


def pulumi(stack: str, *argv: str, stdin: str | None = None) -> str:
    """One pulumi command for `stack` in the project folder; its stdout."""
    command = ["pulumi", *argv, "--stack", stack]
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=PULUMI_TIMEOUT,
                              cwd=PROJECT_ROOT)
    except FileNotFoundError:
        raise RotationError("the pulumi CLI is not installed (https://www.pulumi.com/docs/install/)") from None
    except subprocess.TimeoutExpired:
        raise RotationError(f"`pulumi {' '.join(argv)}` did not finish within {PULUMI_TIMEOUT} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RotationError(f"`pulumi {' '.join(argv)} --stack {stack}` failed: {printable(last)}")
    return done.stdout


def stack_config(stack: str) -> dict[str, str]:
    """The stack's config, secrets decrypted: {key: value}."""
    raw = json.loads(pulumi(stack, "config", "--json", "--show-secrets"))
    return {key: str(entry.get("value", "")) for key, entry in raw.items()}


def current_secret(stack: str, config: dict[str, str]) -> str:
    """turnSecret, or the generated secret the stack outputs while turnSecret was never set."""
    if config.get(CURRENT):
        return config[CURRENT]
    try:
        value = json.loads(pulumi(stack, "stack", "output", "--json", "--show-secrets", "turn_shared_secret"))
    except RotationError as e:
        raise RotationError(f"no current secret to keep: {CURRENT} is not set and the stack has no "
                            f"turn_shared_secret output ({e}); run `pulumi up` first") from None
    if not isinstance(value, str) or not value:
        raise RotationError(f"no current secret to keep: {CURRENT} is not set and turn_shared_secret is empty "
                            "(a STUN-only stack has no TURN secret)")
    return value


def started_at(config: dict[str, str]) -> datetime:
    raw = config.get(ROTATED_AT, "")
    try:
        started = rotation_started(raw)
    except ValueError:
        started = None
    if started is None:
        raise RotationError(f"{ROTATED_AT}: got {printable(repr(raw))}, must be a UTC time such as "
                            "2026-12-05T00:00:00Z; set it to when the rotation's `pulumi up` ran")
    return started


def left(delta: timedelta) -> str:
    minutes = max(1, -(-int(delta.total_seconds()) // 60))
    return f"{minutes // 60} h {minutes % 60} min"


def rotate(stack: str, now: datetime) -> str:
    config = stack_config(stack)
    if config.get(PREVIOUS):
        since = config.get(ROTATED_AT, "an unknown time")
        raise RotationError(f"a rotation is already in progress (since {printable(since)}): finish it first "
                            f"(`stun-infra secret finish --stack {stack}`, then `pulumi up`)")
    new = os.environ.get(NEW_SECRET_ENV)
    if new is not None:
        if problem := turn_secret_problem(new) or (None if new else "is empty"):
            raise RotationError(f"${NEW_SECRET_ENV}: a {len(new)}-character value (not shown) {problem}")
    else:
        new = secrets.token_urlsafe(NEW_SECRET_BYTES)
    old = current_secret(stack, config)
    if new == old:
        raise RotationError(f"${NEW_SECRET_ENV}: is the current secret; a rotation needs a new one")
    pulumi(stack, "config", "set", "--secret", PREVIOUS, stdin=old)
    pulumi(stack, "config", "set", "--secret", CURRENT, stdin=new)
    pulumi(stack, "config", "set", ROTATED_AT, now.strftime(STAMP))
    settle = int(APP_SECRET_SETTLE.total_seconds() // 60)
    return (f"rotation begun on stack {stack}: run `pulumi up` now (every server then accepts both secrets "
            f"within minutes; apps sign with the new one once it is {settle} minutes old). Finish no sooner than "
            f"{(now + TURN_SECRET_OVERLAP).strftime(STAMP)}: `stun-infra secret finish --stack {stack}`, "
            "then `pulumi up`")


def finish(stack: str, now: datetime) -> str:
    config = stack_config(stack)
    if not config.get(PREVIOUS):
        raise RotationError(f"no rotation in progress on stack {stack}: {CURRENT} is the only secret and "
                            "retiring it would leave none; start one with `stun-infra secret rotate`")
    ready = started_at(config) + TURN_SECRET_OVERLAP
    if now < ready:
        raise RotationError(f"the overlap has not passed: {left(ready - now)} left (until {ready.strftime(STAMP)}); "
                            "credentials minted with the previous secret may still be in use")
    pulumi(stack, "config", "rm", PREVIOUS)
    pulumi(stack, "config", "rm", ROTATED_AT)
    return (f"previous secret retired from stack {stack}'s config: run `pulumi up` now "
            "(servers then accept only the current secret)")


def status(stack: str, now: datetime) -> str:
    config = stack_config(stack)
    if not config.get(PREVIOUS):
        return f"stack {stack}: no rotation in progress (one secret)"
    ready = started_at(config) + TURN_SECRET_OVERLAP
    when = "now" if now >= ready else f"in {left(ready - now)} (at {ready.strftime(STAMP)})"
    return f"stack {stack}: rotation in progress since {config[ROTATED_AT]}; `finish` is allowed {when}"


def run(args: argparse.Namespace) -> int:
    step = {"rotate": rotate, "finish": finish, "status": status}[args.step]
    try:
        print(step(args.stack, datetime.now(timezone.utc)))
    except RotationError as e:
        return fail(str(e))
    return 0
