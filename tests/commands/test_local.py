"""`stun-infra local` and `stun-infra probe` against the real coturn on loopback."""

from __future__ import annotations

import sqlite3
import json
import os
import socket
from pathlib import Path

import pytest

from tests.support.coturn import require_coturn

from .conftest import (LOOPBACK, LocalRun, assert_one_line_error, cli, free_ports, port_settings,
                       start_local)

pytestmark = pytest.mark.coturn

TURN_CHECKS = ["stun-udp", "stun-tcp", "tls", "turn-udp", "turn-tcp", "turn-tls"]


@pytest.fixture(autouse=True)
def _coturn() -> None:
    require_coturn()


def _rows(stdout: str) -> list[list[str]]:
    """The probe table's rows (endpoint, check, result, ...), header left out."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ENDPOINT"))
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith(LOOPBACK):
            break
        rows.append(line.split())
    return rows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


# -- local --check ---------------------------------------------------------------------------

def test_local_check_passes_every_probe_and_leaves_nothing_behind(tmp_path: Path):
    stun, tls = free_ports()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = cli("local", "--check", "--no-install", *port_settings(stun, tls), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert [r[1] for r in rows] == TURN_CHECKS
    assert all(r[2] == "ok" for r in rows), result.stdout
    assert {r[0] for r in rows} == {f"{LOOPBACK}:{stun}", f"{LOOPBACK}:{tls}"}
    assert "6 checks: 6 ok" in result.stdout
    assert "local check passed" in result.stdout
    assert "self-signed certificate" in result.stdout  # reported, not failed
    assert list(tmp_path.iterdir()) == []  # the temporary folder is removed
    assert "iceServers" not in result.stdout  # --check only checks


def test_local_says_browsers_refuse_its_self_signed_turns_certificate(tmp_path: Path):
    stun, tls = free_ports()
    result = cli("local", "--check", "--no-install", *port_settings(stun, tls))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "local: turns: here uses a throwaway self-signed certificate, which browsers refuse" in result.stderr


def test_local_check_of_a_stack_whose_load_balancer_ends_tls_serves_and_probes_no_tls(tmp_path: Path):
    stun, _ = free_ports()
    result = cli("local", "--check", "--no-install", "--stack", "prod", "--set", "dnsZoneId=Z0123456789ABCDEFGHIJ",
                 "--set", "dnsName=turn.example.com", "--set", f"stunPort={stun}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r[1] for r in _rows(result.stdout)] == ["stun-udp", "stun-tcp", "turn-udp", "turn-tcp"]
    assert "this stack ends TLS at its load balancer" in result.stderr


def test_local_check_stun_only_stack(tmp_path: Path):
    stun, tls = free_ports()
    result = cli("local", "--check", "--no-install", *port_settings(stun, tls), "--set", "turn=false")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r[1] for r in _rows(result.stdout)] == ["stun-udp", "stun-tcp", "tls"]
    assert "STUN only" in result.stderr


def test_local_check_keeps_its_files_with_dir(tmp_path: Path):
    stun, tls = free_ports()
    result = cli("local", "--check", "--no-install", *port_settings(stun, tls), "--dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stdout + result.stderr
    conf = (tmp_path / "run" / "turnserver.conf")
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    text = conf.read_text()
    assert f"listening-ip={LOOPBACK}" in text and f"listening-port={stun}" in text
    assert "denied-peer-ip=127.0.0.0-127.255.255.255" in text  # the same hardening as an instance
    assert f"userdb={tmp_path / 'run' / 'turndb'}" in text and "static-auth-secret" not in text
    with sqlite3.connect(tmp_path / "run" / "turndb") as db:
        (secret,), = db.execute("SELECT value FROM turn_secret").fetchall()
    assert secret not in result.stdout + result.stderr
    assert "log file opened" in (tmp_path / "run" / "turnserver.log").read_text()  # kept, like the rest


def test_local_says_when_the_port_is_taken(local_server: LocalRun):
    """A coturn already serving (as Debian's does after install) on the same ports."""
    result = cli("local", "--check", "--no-install", *port_settings(local_server.stun_port, local_server.tls_port))
    assert_one_line_error(result, "address in use", f"port {local_server.stun_port}/udp",
                          "systemctl stop coturn", "--set stunPort=")


def test_local_says_when_the_tls_port_is_taken():
    stun, tls = free_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((LOOPBACK, tls))
        holder.listen()
        result = cli("local", "--check", "--no-install", *port_settings(stun, tls))
    assert_one_line_error(result, "address in use", f"port {tls}/tcp", "--set tlsPorts=[")


def test_local_refuses_an_address_not_on_this_machine():
    stun, tls = free_ports()
    result = cli("local", "--check", "--no-install", "--address", "192.0.2.1", *port_settings(stun, tls))
    assert_one_line_error(result, "192.0.2.1", "not an address of this machine")


def test_local_check_with_ipv6_serves_and_probes_both_families(tmp_path: Path):
    stun, tls = free_ports()
    result = cli("local", "--check", "--no-install", "--ipv6", "::1", *port_settings(stun, tls),
                 env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("ENDPOINT")) + 1:]
    rows = [line.split() for line in table if line.startswith(("[::1]", LOOPBACK))]
    assert [r[1] for r in rows if r[0].startswith("[::1]")] == TURN_CHECKS
    assert all(r[2] == "ok" for r in rows) and len(rows) == 12, result.stdout
    v6 = {r[1]: r for r in rows if r[0].startswith("[::1]")}
    assert v6["stun-udp"][-1].startswith("[::1]:")            # mapped: the client's own IPv6 address
    assert v6["turn-udp"][5:7] == ["relayed", v6["turn-udp"][6]] and v6["turn-udp"][6].startswith(f"{LOOPBACK}:")
    # (relayed over IPv4: coturn's default family unless the client asks, see test_dual_stack_relay)


def test_local_takes_an_ipv6_address_with_ipv6_not_address():
    stun, tls = free_ports()
    result = cli("local", "--check", "--no-install", "--address", "::1", *port_settings(stun, tls))
    assert_one_line_error(result, "--address ::1", "--ipv6")


# -- local, serving ---------------------------------------------------------------------------

def test_local_prints_ice_servers_for_rtcpeerconnection(local_server: LocalRun):
    stun, tls = local_server.stun_port, local_server.tls_port
    servers = local_server.ice["iceServers"]
    assert servers[0] == {"urls": [f"stun:{LOOPBACK}:{stun}"]}
    assert servers[1]["urls"] == [f"turn:{LOOPBACK}:{stun}?transport=udp", f"turn:{LOOPBACK}:{stun}?transport=tcp",
                                  f"turns:{LOOPBACK}:{tls}?transport=tcp"]
    assert servers[1]["username"].endswith(":local")
    assert set(servers[1]) == {"urls", "username", "credential"}


def test_probe_of_the_local_server_passes_every_check(local_server: LocalRun):
    result = cli("probe", "-", "--timeout", "2", stdin=json.dumps(local_server.ice))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert [r[1] for r in rows] == TURN_CHECKS
    assert all(r[2] == "ok" for r in rows), result.stdout
    assert "6 checks: 6 ok" in result.stdout
    assert result.stderr.count(" ok ") == 6  # progress lines as it works


def test_probe_json_reports_rtt_mapped_address_tls_and_relay(local_server: LocalRun):
    result = cli("probe", "-", "--json", stdin=json.dumps(local_server.ice))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    checks = {c["check"]: c for c in doc["checks"]}
    assert checks["stun-udp"]["mapped_address"].startswith(f"{LOOPBACK}:")
    assert checks["stun-udp"]["rtt_ms"] > 0
    assert checks["tls"]["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert checks["tls"]["certificate_verified"] is False
    assert checks["tls"]["certificate_not_after"] > "2000"
    assert checks["turn-tls"]["relayed_address"].startswith(f"{LOOPBACK}:")


def test_probe_with_a_wrong_secret_says_credentials_rejected(local_server: LocalRun):
    result = cli("probe", f"{LOOPBACK}:{local_server.stun_port}", "--tls-port", str(local_server.tls_port),
                 "--secret", "not-the-secret", "--timeout", "2")
    line = assert_one_line_error(result, "1 of 4 checks failed", "turn-udp: TURN credentials rejected (401)")
    assert result.returncode == 1
    assert "not-the-secret" not in line


def test_stopping_local_stops_coturn_and_removes_its_folder(tmp_path: Path):
    run = start_local(tmp_path)
    pid = run.turnserver_pid()
    assert _alive(pid)
    assert run.stop() == 0
    assert not _alive(pid)
    assert list(run.tmpdir.iterdir()) == []
    assert "local: stopping" in run.stderr_path.read_text()
