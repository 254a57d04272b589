"""`turns:` as a browser sees it: headless Chromium, trusting a test CA, relays a data
channel through coturn running the rendered config, over TLS only.

- static mode path: coturn itself serves TLS on 443 with a certificate from the CA
  (a user's certificate; ACM's exported one is the same to coturn);
- autoscale path: coturn runs the NLB-mode config (`no-tls`), behind stunnel standing in
  for the NLB's TLS listener, which forwards plain TCP to coturn's stun port;
- the self-signed default: Chromium refuses it, so no relay candidate appears.

Everything runs in one network namespace: the page's server on its loopback, coturn and
stunnel on the veth address, relayed addresses on that same address (no 1:1 NAT here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stun_infra.client.credentials import mint
from stun_infra.client.turn_client import make_self_signed
from stun_infra.settings import Settings, load_settings

from tests.support.browser import relay_check, home_trusting, require_browser
from tests.support.certs import make_ca
from tests.support.coturn import require_coturn, running_coturn
from tests.support.netns import SERVER_IPV4, NetNs

pytestmark = pytest.mark.coturn

HOST = "turn.stun-infra.test"
ZONE = "Z0123456789ABCDEFGHIJ"
RELAY = {"relayMinPort": "50000", "relayMaxPort": "50099"}
STUNNEL_DEADLINE = 10.0


@pytest.fixture(scope="module")
def ns() -> Iterator[NetNs]:
    require_coturn()
    require_browser()
    with NetNs() as ns:
        yield ns


@pytest.fixture(scope="module")
def ca():
    return make_ca()


def ice_server(secret: str, uri: str) -> dict:
    username, credential = mint(secret, ttl_seconds=600, user="browser")
    return {"urls": [uri], "username": username, "credential": credential}


def user_certificate_settings(issued) -> Settings:
    return load_settings({"tlsCertificate": issued.cert_pem, "tlsPrivateKey": issued.key_pem, **RELAY},
                         stack="test", region="eu-west-3", secret_keys={"stun-infra:tlsPrivateKey"})


def assert_relayed_over_tls(result: dict) -> None:
    assert result["message"] == "hello over turns", result
    assert result["relay"], result
    assert {c["relayProtocol"] for c in result["relay"]} == {"tls"}, result
    assert all(c["address"] == SERVER_IPV4 for c in result["relay"]), result


def test_chromium_relays_a_data_channel_over_turns_on_443_with_a_trusted_certificate(ns, ca, tmp_path):
    settings = user_certificate_settings(ca.issue(HOST))
    assert settings.tls.coturn_port == 443
    issued = ca.issue(HOST)
    with running_coturn(ns, tmp_path / "coturn", settings, certificate=(issued.cert_pem, issued.key_pem),
                        public_ip=SERVER_IPV4) as server:
        result = relay_check(ns, ice_server(server.secret, f"turns:{HOST}:443?transport=tcp"),
                             home_trusting(tmp_path / "home", ca.cert_pem), {HOST: SERVER_IPV4})
    assert_relayed_over_tls(result)


@pytest.fixture
def stunnel(ns: NetNs, ca, tmp_path: Path) -> Iterator[None]:
    """stunnel on 443 ending TLS with a CA certificate and forwarding TCP to coturn's stun
    port, as the NLB's TLS listener does (TLS 1.2+)."""
    issued = ca.issue(HOST)
    cert, key = issued.write(tmp_path, "stunnel")
    conf = tmp_path / "stunnel.conf"
    conf.write_text(f"foreground = yes\npid =\n[turns]\naccept = {SERVER_IPV4}:443\n"
                    f"connect = {SERVER_IPV4}:3478\ncert = {cert}\nkey = {key}\nsslVersionMin = TLSv1.2\n")
    log = (tmp_path / "stunnel.log").open("wb")
    process = ns.popen(["stunnel4", str(conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        ns.run(_wait_for_listener, SERVER_IPV4, 443, deadline=STUNNEL_DEADLINE + 5)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_for_listener(host: str, port: int) -> None:
    import socket
    import time
    deadline = time.monotonic() + STUNNEL_DEADLINE
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_chromium_relays_through_a_tls_terminator_to_coturns_tcp_port_as_the_nlb_does(ns, ca, tmp_path, stunnel):
    settings = load_settings({"mode": "autoscale", "dnsZoneId": ZONE, "dnsName": HOST, **RELAY},
                             stack="test", region="eu-west-3")
    assert settings.tls.ends_at_load_balancer
    with running_coturn(ns, tmp_path / "coturn", settings, public_ip=SERVER_IPV4) as server:
        assert "\nno-tls\n" in server.conf
        result = relay_check(ns, ice_server(server.secret, f"turns:{HOST}:443?transport=tcp"),
                             home_trusting(tmp_path / "home", ca.cert_pem), {HOST: SERVER_IPV4})
    assert_relayed_over_tls(result)


def test_chromium_gets_no_relay_candidate_from_the_self_signed_default(ns, ca, tmp_path):
    """What the README warns about: browsers refuse a self-signed TURN certificate."""
    settings = load_settings(RELAY, stack="test", region="eu-west-3")
    assert not settings.tls.trusted and settings.tls.coturn_port == 5349
    cert, key = make_self_signed(tmp_path / "self-signed", HOST)  # the right name, but nobody vouches for it
    with running_coturn(ns, tmp_path / "coturn", settings, public_ip=SERVER_IPV4,
                        certificate=(cert.read_text(), key.read_text())) as server:
        result = relay_check(ns, ice_server(server.secret, f"turns:{HOST}:5349?transport=tcp"),
                             home_trusting(tmp_path / "home", ca.cert_pem), {HOST: SERVER_IPV4})
    assert result["relay"] == [] and result["message"] is None, result
    assert any(e.get("code") == 701 for e in result["errors"]), result
