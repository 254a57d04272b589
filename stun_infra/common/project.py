"""The project's name and where its files are: one definition for every side."""

from __future__ import annotations

from pathlib import Path

PROJECT = "stun-infra"  # Pulumi.yaml's name, the config namespace and the type tokens' package
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"
