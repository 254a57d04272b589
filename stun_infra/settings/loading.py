"""Loading: the stack's config as the engine hands it over, into one validated `Settings`,
every problem reported at once, each naming the key, the value it got and what is allowed."""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Sequence

from stun_infra.common.project import PROJECT
from stun_infra.common.text import printable
from stun_infra.settings.cross import cross_checks, quotas, region_rules
from stun_infra.settings.keys import _CANONICAL, _CHECKS, UNSHOWN_KEYS, _one_line, _show, stack_name_problem
from stun_infra.settings.model import ConfigError, Settings
from stun_infra.settings.regions import region_problem
from stun_infra.settings.schema import _parse, _snake, key_specs

# Keys the engine hands over that are not ours but expected: the providers' own config.
FOREIGN_NAMESPACES = ("aws", "pulumi", "tls", "random")


def _near_key(key: str) -> list[str]:
    specs = key_specs()
    return difflib.get_close_matches(key, specs, n=1, cutoff=0.6) or [k for k in specs if k.lower() == key.lower()]


def split_config(everything: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(this project's keys without the `stun-infra:` prefix, the other keys that no one reads)

    Pulumi hands over every key of the stack; a key without a namespace, or in a namespace
    neither this program nor its providers read, would be silently dropped.
    """
    def read(key: str) -> bool:
        namespace, colon, _ = key.partition(":")
        return bool(colon) and (namespace == PROJECT or namespace in FOREIGN_NAMESPACES)

    ours = {k.split(":", 1)[1]: v for k, v in everything.items() if k.startswith(PROJECT + ":")}
    return ours, sorted(k for k in everything if not read(k))


# Keys an earlier release read, with how to move a stack off them (README, Changelog).
RENAMED_KEYS = {
    "tlsPort": ("replaced by stun-infra:tlsPorts, a list; run `pulumi config rm stun-infra:tlsPort`, then, "
                "to keep your port, `pulumi config set --path 'stun-infra:tlsPorts[0]' PORT`"),
}


def _dropped_key_problem(key: str) -> str:
    name = key.split(":", 1)[-1]
    near = _near_key(name)
    hint = f"did you mean {PROJECT}:{near[0]}? " if near else ""
    where = "has no namespace" if ":" not in key else \
        f"is in namespace {printable(repr(key.split(':', 1)[0]))}, which nothing here reads"
    return (f"{printable(key)}: {where}, so it would be ignored; {hint}this program's keys are "
            f"{PROJECT}:<key>, its providers' {', '.join(n + ':' for n in FOREIGN_NAMESPACES)}")


def load_settings(raw: Mapping[str, Any], *, stack: str, region: str,
                  secret_keys: set[str] = frozenset(), dropped: Sequence[str] = (),
                  unreadable: set[str] = frozenset()) -> Settings:
    """Settings from this project's config (keys without the `stun-infra:` prefix); `dropped`
    names the stack's other keys that no one reads (split_config); `unreadable` names keys whose
    value the caller could not read (a secret it cannot decrypt): their checks are left to a run
    that can.

    Raises ConfigError listing every problem.
    """
    specs = key_specs()
    problems: list[str] = []
    if message := stack_name_problem(stack):
        problems.append(message)
    problems += [_dropped_key_problem(key) for key in dropped]
    for key in sorted(set(raw) - set(specs)):
        if key in RENAMED_KEYS:
            problems.append(f"{PROJECT}:{key}: {RENAMED_KEYS[key]}")
            continue
        near = _near_key(key)
        hint = f"did you mean {PROJECT}:{near[0]}? " if near else ""
        problems.append(f"{PROJECT}:{printable(key)}: unknown key; {hint}known keys: {', '.join(specs)}")
    values: dict[str, Any] = {}
    for key, spec in specs.items():
        given = raw.get(key, spec.default)
        hidden = f"{PROJECT}:{key}" in secret_keys
        try:
            value = _parse(spec, given)
        except ValueError as e:
            problems.append(f"{PROJECT}:{key}: got {_show(key, given, hidden)}, {e}")
            continue
        message = None if key in unreadable else (None if key in UNSHOWN_KEYS else _one_line(value)) or \
            (_CHECKS[key](value) if key in _CHECKS else None)
        if message:
            problems.append(f"{PROJECT}:{key}: got {_show(key, given, hidden)}, {message}")
        values[key] = _CANONICAL[key](value) if key in _CANONICAL and not message else value
    if message := region_problem(region):
        problems.append(message)
    if not problems:
        problems += cross_checks(values, set(raw), set(secret_keys), set(unreadable)) + quotas(values) \
            + region_rules(values, region, set(unreadable))
    if problems:
        raise ConfigError(problems)
    fields = {_snake(k): v for k, v in values.items()}
    fields["tags"] = tuple(tuple(t.split("=", 1)) for t in values["tags"])
    return Settings(project=PROJECT, stack=stack, region=region, **fields)
