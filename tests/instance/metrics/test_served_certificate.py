"""The reporter's certificate gauge against the real coturn 4.6.1 with the rendered config, in a
network namespace: it reads what coturn's TLS listener presents, so a certificate file replaced
on disk counts only once coturn reloads it (SIGUSR2, as the TLS sync does)."""

from __future__ import annotations

import datetime
import importlib.util
import os
import signal
import time
from pathlib import Path

import pytest

from stun_infra.client.turn_client import make_self_signed
from stun_infra.instance import binding_counters
from tests.support.coturn import require_coturn, running_coturn, settings_for
from tests.support.netns import NetNs

pytestmark = pytest.mark.coturn

RELOAD_WAIT = 10.0


def load_reporter(tmp_path: Path, settings):  # noqa: ANN001
    path = tmp_path / "stun_metrics_reporter.py"
    path.write_text(binding_counters.reporter_script(settings))
    spec = importlib.util.spec_from_file_location("stun_metrics_reporter_served", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def certificate(tmp_path: Path, days: int) -> tuple[str, str]:
    cert, key = make_self_signed(tmp_path / f"{days}-days", "stun-infra.test", days=days)
    return cert.read_text(), key.read_text()


def test_the_days_left_are_the_served_certificates_until_coturn_reloads_a_new_file(tmp_path):
    require_coturn()
    settings = settings_for()
    reporter = load_reporter(tmp_path, settings)
    first, renewed = certificate(tmp_path, 30), certificate(tmp_path, 90)
    with NetNs() as ns, running_coturn(ns, tmp_path / "coturn", settings, certificate=first) as server:
        assert server.tls_address[1] == reporter.TLS_PORT

        def served_days() -> float:
            der = ns.run(reporter.served_certificate, server.host, reporter.TLS_PORT, reporter.CERTIFICATE_TIMEOUT)
            return reporter.certificate_days_left(der, datetime.datetime.now(datetime.timezone.utc))

        assert 29 < served_days() <= 30
        Path(server.paths.cert).write_text(renewed[0])
        Path(server.paths.key).write_text(renewed[1])
        assert 29 < served_days() <= 30  # the file says 90; clients still get the old one
        os.kill(server.process.pid, signal.SIGUSR2)
        deadline = time.monotonic() + RELOAD_WAIT
        while not 89 < served_days() <= 90:
            assert time.monotonic() < deadline, f"coturn did not serve the renewed certificate within {RELOAD_WAIT} s"
            time.sleep(0.1)
