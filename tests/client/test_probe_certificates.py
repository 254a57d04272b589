"""`probe` judges the TLS certificate per endpoint: trusted by the system store, name
match, days left; a name mismatch or an expiry within 7 days fails.

coturn serves a certificate from a test CA inside a network namespace; `probe` runs as a
user runs it, inside that namespace, with the host names in the namespace's own hosts
file (/etc/netns/NAME/hosts, which `ip netns exec` mounts over /etc/hosts) and, where
the test says so, the CA as its system store (SSL_CERT_FILE).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stun_infra.settings import load_settings

from tests.support.certs import make_ca
from tests.support.coturn import require_coturn, running_coturn
from tests.support.netns import SERVER_IPV4, NetNs

pytestmark = pytest.mark.coturn

HOST, OTHER = "turn.stun-infra.test", "other.stun-infra.test"
RELAY = {"relayMinPort": "50000", "relayMaxPort": "50099"}
ROOT = Path(__file__).resolve().parents[2]
CA = make_ca()


@contextmanager
def serving(tmp_path: Path, days: int) -> Iterator[NetNs]:
    """coturn on 443 with a CA certificate for HOST valid `days` more days."""
    require_coturn()
    issued = CA.issue(HOST, days=days)
    settings = load_settings({"tlsCertificate": issued.cert_pem, "tlsPrivateKey": issued.key_pem, **RELAY},
                             stack="test", region="eu-west-3", secret_keys={"stun-infra:tlsPrivateKey"})
    with NetNs() as ns, ns.hosts(f"{SERVER_IPV4} {HOST} {OTHER}\n"), \
            running_coturn(ns, tmp_path, settings, certificate=(issued.cert_pem, issued.key_pem)):
        yield ns


def probe_tls(ns: NetNs, tmp_path: Path, target: str, trust_ca: bool) -> tuple[int, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT")}
    if trust_ca:
        (tmp_path / "ca.pem").write_text(CA.cert_pem)
        env["SSL_CERT_FILE"] = str(tmp_path / "ca.pem")
    done = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-m", "stun_infra", "probe", target,
                           "--json", "--timeout", "2", "--retries", "0"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    return done.returncode, checks["tls"]


def test_a_trusted_certificate_naming_the_host_passes_with_its_days_left(tmp_path):
    with serving(tmp_path, days=60) as ns:
        code, tls = probe_tls(ns, tmp_path, f"turns:{HOST}:443", trust_ca=True)
    assert code == 0 and tls["ok"], tls
    assert (tls["certificate_trusted"], tls["certificate_name_match"]) == (True, True)
    assert tls["certificate_days_left"] in (58, 59) and tls["certificate_names"] == [HOST]
    assert "trusted (system store)" in tls["detail"] and f"name {HOST} matches" in tls["detail"]


def test_a_certificate_the_system_store_does_not_trust_is_reported_not_failed(tmp_path):
    with serving(tmp_path, days=60) as ns:
        code, tls = probe_tls(ns, tmp_path, f"turns:{HOST}:443", trust_ca=False)
    assert tls["ok"] and tls["certificate_trusted"] is False and tls["certificate_verified"] is False
    assert "not trusted:" in tls["detail"]


def test_a_certificate_for_another_name_fails(tmp_path):
    with serving(tmp_path, days=60) as ns:
        code, tls = probe_tls(ns, tmp_path, f"turns:{OTHER}:443", trust_ca=True)
    assert code == 1 and not tls["ok"]
    assert tls["detail"].endswith(f": certificate names {HOST}, not {OTHER}: browsers refuse it"), tls


def test_a_certificate_expiring_within_7_days_fails(tmp_path):
    with serving(tmp_path, days=3) as ns:
        code, tls = probe_tls(ns, tmp_path, f"turns:{HOST}:443", trust_ca=True)
    assert code == 1 and not tls["ok"]
    assert "certificate expires in 2 days" in tls["detail"] or "certificate expires in 3 days" in tls["detail"]
    assert "under 7: renew it" in tls["detail"]
