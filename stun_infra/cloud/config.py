"""The running Pulumi program's config, read once: the one place that touches Pulumi's
config runtime, so `settings` stays free of Pulumi and shared by every side."""

from __future__ import annotations

import os

import pulumi
from pulumi.runtime import config as runtime_config

from stun_infra.settings import PROJECT, ConfigError, Settings, load_settings, split_config

CONFIG_ENV = "PULUMI_CONFIG"
SECRET_KEYS_ENV = "PULUMI_CONFIG_SECRET_KEYS"


def read_settings() -> Settings:
    """Settings of the running Pulumi program: the one place that reads config."""
    if pulumi.get_project() != PROJECT:
        raise ConfigError([f"project is {pulumi.get_project()!r}, expected {PROJECT!r} (Pulumi.yaml name)"])
    try:
        everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
        secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise ConfigError([f"{CONFIG_ENV}: must be a JSON object of \"namespace:key\": \"value\" "
                           f"(and {SECRET_KEYS_ENV} a JSON list of keys), as the Pulumi CLI sets them"]) from None
    ours, dropped = split_config(everything)
    region = everything.get("aws:region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    return load_settings(ours, stack=pulumi.get_stack(), region=region, secret_keys=secret_keys, dropped=dropped)
