"""TURN over TLS on every configured port: coturn binds the first, the rendered nftables
table redirects the others to it; and the NLB-mode config (`no-tls`) runs clean."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from stun_infra.instance import tls_ports
from stun_infra.client.turn_client import tls_context, tls_handshake, turn_allocation
from stun_infra.settings import load_settings

from tests.support.certs import make_ca
from tests.support.coturn import rejected_lines, require_coturn, running_coturn
from tests.support.netns import PEER_IPV4, SERVER_IPV4, NetNs

pytestmark = pytest.mark.coturn

HOST = "turn.stun-infra.test"
RELAY = {"relayMinPort": "50000", "relayMaxPort": "50099"}
CA = make_ca()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """coturn on 443 with a CA certificate (tlsPorts default 443, 5349), the redirect table loaded."""
    require_coturn()
    issued = CA.issue(HOST)
    settings = load_settings({"tlsCertificate": issued.cert_pem, "tlsPrivateKey": issued.key_pem, **RELAY},
                             stack="test", region="eu-west-3", secret_keys={"stun-infra:tlsPrivateKey"})
    workdir = tmp_path_factory.mktemp("tls-ports")
    ruleset = workdir / "tls-ports.nft"
    ruleset.write_text(tls_ports.ruleset(settings))
    (workdir / "ca.pem").write_text(CA.cert_pem)
    with NetNs() as ns, client_namespace(ns) as client:
        subprocess.run(["ip", "netns", "exec", ns.name, "nft", "-f", str(ruleset)], check=True,
                       capture_output=True, timeout=30)
        with running_coturn(ns, workdir, settings, certificate=(issued.cert_pem, issued.key_pem)) as server:
            yield server, client, workdir / "ca.pem"


@contextmanager
def client_namespace(ns: NetNs) -> Iterator[str]:
    """A second namespace holding the veth's peer end: its packets reach the server's
    address from outside, through the prerouting hook, as a client's reach an instance."""
    name = f"{ns.name}-client"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        for argv in (["ip", "-n", ns.name, "link", "set", "veth-peer", "netns", name],
                     ["ip", "-n", name, "addr", "add", f"{PEER_IPV4}/24", "dev", "veth-peer"],
                     ["ip", "-n", name, "link", "set", "veth-peer", "up"]):
            subprocess.run(argv, check=True, capture_output=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


def verified_from_outside(client: str, ca: Path, port: int) -> str:
    """openssl s_client from the client namespace, verifying the chain and the host name."""
    out = subprocess.run(["ip", "netns", "exec", client, "openssl", "s_client", "-connect", f"{SERVER_IPV4}:{port}",
                          "-servername", HOST, "-verify_hostname", HOST, "-CAfile", str(ca),
                          "-verify_return_error", "-brief"],
                         input=b"", capture_output=True, timeout=15)
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def trusting_ca() -> ssl.SSLContext:
    context = tls_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=CA.cert_pem)
    return context


def test_coturn_binds_443_as_its_one_tls_port(served):
    server, _, _ = served
    assert "tls-listening-port=443" in server.conf and "alt-tls-listening-port" not in server.conf


def test_turn_over_tls_allocates_on_443_with_a_certificate_that_verifies(served):
    server, _, _ = served
    handshake = server.ns.run(tls_handshake, (SERVER_IPV4, 443), context=trusting_ca(), server_name=HOST)
    assert handshake.version in ("TLSv1.2", "TLSv1.3")

    chain_only = trusting_ca()
    chain_only.check_hostname = False  # the client connects by address; the name is checked above

    async def go():
        async with turn_allocation((SERVER_IPV4, 443), *server.credentials(), transport="tcp",
                                   ssl_context=chain_only, timeout=3) as relay:
            return relay.relayed_address
    assert server.ns.run_async(go)[0]


@pytest.mark.parametrize("port", [443, 5349])
def test_a_client_outside_verifies_the_certificate_on_every_tls_port(served, port):
    _, client, ca = served
    out = verified_from_outside(client, ca, port)
    assert "Verification: OK" in out and f"Verified peername: {HOST}" in out, out


def test_the_rendered_tls_config_starts_without_a_rejected_line(served):
    server, _, _ = served
    assert rejected_lines(server.boot_log) == []


def test_the_nlb_mode_config_serves_no_tls_and_starts_clean(tmp_path):
    require_coturn()
    settings = load_settings({"mode": "autoscale", "dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": HOST, **RELAY},
                             stack="test", region="eu-west-3")
    with NetNs() as ns, running_coturn(ns, tmp_path, settings) as server:
        assert rejected_lines(server.startup_log()) == []
        with pytest.raises(OSError):
            ns.run(tls_handshake, (SERVER_IPV4, 443), timeout=2)


def test_coturn_reloads_a_renewed_certificate_on_sigusr2_without_restarting(tmp_path):
    """What the static-mode sync relies on: new files plus SIGUSR2, same process, new certificate."""
    require_coturn()
    first, renewed = CA.issue(HOST), CA.issue(HOST)
    settings = load_settings({"tlsCertificate": first.cert_pem, "tlsPrivateKey": first.key_pem, **RELAY},
                             stack="test", region="eu-west-3", secret_keys={"stun-infra:tlsPrivateKey"})

    def served_serial(ns: NetNs) -> int:
        der = ns.run(_peer_certificate, (SERVER_IPV4, 443))
        return x509.load_der_x509_certificate(der).serial_number

    with NetNs() as ns, running_coturn(ns, tmp_path, settings, certificate=(first.cert_pem, first.key_pem)) as server:
        assert served_serial(ns) == x509.load_pem_x509_certificate(first.cert_pem.encode()).serial_number
        renewed.write(tmp_path)  # cert.pem and key.pem, where the rendered config points
        os.kill(server.process.pid, signal.SIGUSR2)
        expected = x509.load_pem_x509_certificate(renewed.cert_pem.encode()).serial_number
        deadline = time.monotonic() + 10
        while served_serial(ns) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_serial(ns) == expected and server.process.poll() is None


def _peer_certificate(address) -> bytes:
    context = tls_context()
    with socket.create_connection(address, timeout=3) as sock, context.wrap_socket(sock) as tls:
        return tls.getpeercert(binary_form=True)
