"""The running Pulumi program's config, read once: the one place that touches Pulumi's
config runtime, so `settings` stays free of Pulumi and shared by every side."""

from __future__ import annotations

import os

import pulumi
from pulumi.runtime import config as runtime_config

from stun_infra.cloud.versions import version_problems
from stun_infra.common.project import PROJECT
from stun_infra.settings import ConfigError, Settings, load_settings, split_config

CONFIG_ENV = "PULUMI_CONFIG"
SECRET_KEYS_ENV = "PULUMI_CONFIG_SECRET_KEYS"


def environment_config() -> tuple[dict[str, str], set[str]]:
    """(config, secret keys) from PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS, where the Pulumi
    CLI hands a program its config; one ConfigError when they are not what the CLI writes."""
    try:
        config = runtime_config.get_config_env()
        secret_keys = runtime_config.get_config_secret_keys_env()
        if not isinstance(config, dict) or not isinstance(secret_keys, list):
            raise TypeError
        return {str(k): v for k, v in config.items()}, {str(k) for k in secret_keys}
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise ConfigError([f"{CONFIG_ENV}: must be a JSON object of \"namespace:key\": \"value\" "
                           f"(and {SECRET_KEYS_ENV} a JSON list of keys), as the Pulumi CLI sets them"]) from None


def read_settings(unreadable: set[str] = frozenset()) -> Settings:
    """Settings of the running Pulumi program: the one place that reads config. `unreadable`
    names keys whose value the caller could not read (the offline engine's stand-ins)."""
    if pulumi.get_project() != PROJECT:
        raise ConfigError([f"project is {pulumi.get_project()!r}, expected {PROJECT!r} (Pulumi.yaml name)"])
    if problems := version_problems():
        raise ConfigError(problems)
    env_config, env_secret_keys = environment_config()
    everything = {**env_config, **runtime_config.CONFIG.get()}
    secret_keys = env_secret_keys | {key for key in everything if runtime_config.is_config_secret(key)}
    ours, dropped = split_config(everything)
    region = everything.get("aws:region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    return load_settings(ours, stack=pulumi.get_stack(), region=region, secret_keys=secret_keys, dropped=dropped,
                         unreadable=unreadable)
