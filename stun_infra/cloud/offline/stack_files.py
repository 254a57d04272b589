"""Stack files read as the Pulumi CLI would hand their config to the program, for the
commands that run without it (`plan`, `render`, `local`) and the offline engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from stun_infra.common.project import PROJECT, PROJECT_ROOT
from stun_infra.common.text import printable
from stun_infra.settings import ConfigError, DuplicateKey, Settings, load_settings, load_yaml, split_config, \
    stack_name_problem

# What stands in for a secret that cannot be seen here: a `secure:` value of a stack file
# (never decrypted offline), and the mock engine's generated passwords and keys. The only
# secure key the project takes is PEM text, so the stand-in has that shape.
UNSEEN_SECRET = "offline-placeholder-for-a-secret"
# What a stack file may hold besides `config:` (Pulumi's stack settings file).
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def stand_in(label: str = "") -> str:
    """A PEM-shaped value carrying UNSEEN_SECRET (and `label`, to tell stand-ins apart)."""
    return f"-----BEGIN PRIVATE KEY-----\n{UNSEEN_SECRET}{'-' if label else ''}{label}\n-----END PRIVATE KEY-----\n"


def unseen_keys(config: Mapping[str, Any]) -> set[str]:
    """The keys whose value stands in for a secret that cannot be read here."""
    return {key for key, value in config.items() if isinstance(value, str) and UNSEEN_SECRET in value}


def stack_config(stack: str, overrides: Mapping[str, str] = (), project_root: Path = PROJECT_ROOT
                 ) -> tuple[dict[str, str], set[str]]:
    """Config as the engine would hand it over, as strings: PULUMI_CONFIG (what the running
    program reads), then Pulumi.<stack>.yaml, then overrides. Every command reads a stack here.

    Secure values cannot be decrypted offline: they get a stand-in (`unseen_keys` names them)
    and stay secret.
    """
    from stun_infra.cloud.config import environment_config

    if problem := stack_name_problem(stack):
        raise ConfigError([problem])
    env_config, secret_keys = environment_config()
    values = {key: engine_string(value) for key, value in env_config.items()}
    for key, value in stack_file_config(project_root / f"Pulumi.{stack}.yaml").items():
        key = str(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = stand_in()
            secret_keys.add(key)
        else:
            values[key] = engine_string(value)
    for key, value in dict(overrides).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        values[full] = value
    return values, secret_keys


def stack_file_config(path: Path) -> dict[Any, Any]:
    """The `config:` map of a stack file ({} when there is no file); ConfigError, one line,
    for a file that is not YAML, not a map, or holds keys Pulumi's stack file does not."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path.name}: cannot be read ({getattr(e, 'strerror', None) or e})"]) from None
    try:
        doc = load_yaml(text)
    except DuplicateKey as e:
        raise ConfigError([f"{path.name}: line {e.problem_mark.line + 1}: {e.problem}; Pulumi refuses a stack "
                           "file that names a key twice: keep one"]) from None
    except (yaml.YAMLError, RecursionError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path.name}: is not valid YAML{where}; a stack file is a map with a `config:` map "
                           f"of `{PROJECT}:<key>: value`"]) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("config") or {}, dict):
        raise ConfigError([f"{path.name}: must be a map with a `config:` map of `{PROJECT}:<key>: value`"])
    stray = sorted(printable(str(k)) for k in doc if k not in STACK_FILE_KEYS)
    if stray:
        raise ConfigError([f"{path.name}: {', '.join(stray)}: not a stack file setting, so it would be ignored; "
                           f"config goes under `config:` as `{PROJECT}:<key>: value`"])
    return doc.get("config") or {}


def stack_settings(stack: str, overrides: Mapping[str, str] = ()) -> Settings:
    """Validated settings of a stack file plus overrides, as `pulumi up` would read them."""
    config, secret_keys = stack_config(stack, overrides)
    ours, dropped = split_config(config)
    return load_settings(ours, stack=stack, region=config.get("aws:region", ""), secret_keys=secret_keys,
                         dropped=dropped, unreadable=unseen_keys(ours))


def engine_string(value: Any) -> str:
    """How the Pulumi engine passes a config value to the program."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)

