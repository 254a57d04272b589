"""Stack settings: read once from config, validated, frozen.

Pulumi.yaml's `config:` block is the single source of every key's type and default
(`schema`); `keys` holds each key's own rules, `cross` the rules between keys, `loading`
turns the engine's config into one `Settings` (`model`) or one `ConfigError` listing every
problem, and `tls` decides the TLS plan once. Imports nothing of ours but `common`, never Pulumi.
"""

from stun_infra.common.project import PROJECT, PROJECT_FILE, PROJECT_ROOT
from stun_infra.settings.cross import MAX_PARAMETER_BYTES, MAX_USER_TAGS
from stun_infra.settings.keys import (ACM_DOMAIN_PATTERN, APP_SECRET_SETTLE, DRAIN_SECONDS, TURN_SECRET_OVERLAP,
                                      rotation_started, stack_name_problem, turn_secret_problem)
from stun_infra.settings.loading import load_settings, split_config
from stun_infra.settings.model import DEBIAN_ARCH, ConfigError, Settings, architecture_of
from stun_infra.settings.regions import REGIONS_FILE, SUPPORTED_PARTITION, known_regions
from stun_infra.settings.schema import DuplicateKey, _snake, key_specs, load_yaml
from stun_infra.settings.tls import TlsPlan

__all__ = ["ACM_DOMAIN_PATTERN", "APP_SECRET_SETTLE", "DRAIN_SECONDS", "MAX_PARAMETER_BYTES", "MAX_USER_TAGS",
           "PROJECT", "PROJECT_FILE", "PROJECT_ROOT", "REGIONS_FILE", "SUPPORTED_PARTITION", "TURN_SECRET_OVERLAP",
           "ConfigError", "DEBIAN_ARCH", "DuplicateKey", "Settings", "TlsPlan", "_snake", "architecture_of", "key_specs",
           "known_regions",
           "load_settings", "load_yaml", "rotation_started", "split_config", "stack_name_problem",
           "turn_secret_problem"]
