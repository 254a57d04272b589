"""A virtualenv whose providers are older than the declared floors stops the program before
any resource, naming the package and the way out (`pulumi up` reuses a virtualenv as it is)."""

from __future__ import annotations

import pytest

from stun_infra.cloud import versions
from stun_infra.settings import ConfigError

from tests.conftest import program


def installed_as(monkeypatch, **pinned: str) -> None:
    real = versions.metadata.version
    monkeypatch.setattr(versions.metadata, "version", lambda name: pinned.get(name, None) or real(name))


def test_a_provider_below_its_floor_stops_the_program_before_any_resource(monkeypatch):
    installed_as(monkeypatch, **{"pulumi-aws": "7.42.0"})
    with pytest.raises(ConfigError) as caught:
        program()
    assert caught.value.problems == [
        "pulumi-aws: 7.42.0 is installed, this program needs 7.43 or later; run `pulumi install` or "
        "scripts/bootstrap (they install requirements.txt's locked versions)"]


def test_a_missing_provider_is_named(monkeypatch):
    def version(name: str) -> str:
        raise versions.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(versions.metadata, "version", version)
    assert len(versions.version_problems()) == len(versions.CHECKED)


def test_this_environment_meets_every_floor():
    assert versions.version_problems() == []


def test_the_floors_are_pyprojects():
    assert versions.floors()["pulumi-aws"] == "7.43"


@pytest.mark.parametrize("older, newer", [("7.9.1", "7.43"), ("7.43", "7.43.1"), ("3.231.0", "3.272.0")])
def test_releases_compare_as_numbers(older, newer):
    assert versions.release(older) < versions.release(newer)
    assert versions.release("7.43.0") == versions.release("7.43")
