"""Bad input and parsing: one-line errors, never a traceback; no server needed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from stun_infra.client.targets import InputError, Servers, parse_ttl, plan_checks, read_servers, split_families

from .conftest import LOOPBACK, assert_one_line_error, cli, free_ports

SECRET = "not-a-real-secret"
OUTPUTS = {
    "mode": "static", "region": "eu-west-3",
    "stun_uris": ["stun:turn.example.com:3478"],
    "turn_uris": ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp",
                  "turns:turn.example.com:5349?transport=tcp"],
    "turn_shared_secret": SECRET,
    "public_ips": ["203.0.113.10", "203.0.113.11"],
}


# -- TTL ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800),
                                           ("7d", 604800), ("90", 90), (" 1H ", 3600)])
def test_ttl_forms(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("ttl", ["0", "0s", "abc", "10y", "8d", "-5m", "1.5h", ""])
def test_bad_ttl_is_one_line_naming_the_allowed_forms(ttl):
    result = cli("credentials", "--secret", SECRET, f"--ttl={ttl}", "turn.example.com")
    line = assert_one_line_error(result, f"--ttl {ttl!r}", "30s, 15m, 1h or 2d", "7d")
    assert result.stdout == ""
    assert SECRET not in line


# -- stack outputs on stdin -----------------------------------------------------------------

@pytest.mark.parametrize("command", ["probe -", "credentials"])
@pytest.mark.parametrize("stdin, fragment", [
    ("{not json", "not JSON (line 1 column 2"),
    ("", "stdin is empty"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"mode": "static"}', "no stun_uris or turn_uris"),
    ('{"stun_uris": "stun:a:3478"}', "stun_uris must be a list of strings"),
    ('{"stun_uris": ["http://a"]}', "expected stun:HOST[:PORT]"),
    ('{"stun_uris": ["stun:a:99999"]}', "port '99999' must be a number from 1 to 65535"),
    ('{"stun_uris": ["stun:a:3478"], "turn_shared_secret": "[secret]"}', "--show-secrets"),
    ('{"stun_uris": ["stun:a:3478"], "public_ips": ["a.b"]}', "not an IP address"),
])
def test_malformed_stack_outputs_are_one_line_errors(command, stdin, fragment):
    result = cli(*command.split(), stdin=stdin, timeout=20)
    assert_one_line_error(result, fragment)


def test_credentials_from_stack_outputs_use_their_uris_and_secret():
    result = cli("credentials", "--ttl", "15m", "--user", "alice", stdin=json.dumps(OUTPUTS))
    assert result.returncode == 0, result.stderr
    ice = json.loads(result.stdout)["iceServers"]
    assert ice[0] == {"urls": OUTPUTS["stun_uris"]}
    assert ice[1]["urls"] == OUTPUTS["turn_uris"]
    expiry, user = ice[1]["username"].split(":")
    assert user == "alice"
    assert 0 < int(expiry) - time.time() <= 15 * 60
    from stun_infra.client.credentials import password_for
    assert ice[1]["credential"] == password_for(SECRET, ice[1]["username"])
    assert SECRET not in result.stdout + result.stderr


def test_credentials_for_a_host_name_every_transport():
    result = cli("credentials", "--secret", SECRET, "[2001:db8::5]:3479", "--tls-port", "443")
    assert result.returncode == 0, result.stderr
    ice = json.loads(result.stdout)["iceServers"]
    assert ice[0]["urls"] == ["stun:[2001:db8::5]:3479"]
    assert ice[1]["urls"] == ["turn:[2001:db8::5]:3479?transport=udp", "turn:[2001:db8::5]:3479?transport=tcp",
                              "turns:[2001:db8::5]:443?transport=tcp"]


@pytest.mark.parametrize("args, stdin, fragment", [
    (["credentials", "turn.example.com"], None, "no secret"),
    (["credentials", "--secret", SECRET], None, "stdin is empty"),
    (["credentials", "--secret", SECRET, "--user", "a:b", "x.example"], None, "contain no ':'"),
    (["credentials"], '{"iceServers": [{"urls": "stun:a:1"}]}', "no turn_shared_secret"),
    (["probe"], None, "nothing to probe"),
    (["probe", "http://example.com"], None, "expected host, host:port or a stun:/turn:/turns: URI"),
    (["probe", "[::1"], None, "unclosed '['"),
    (["probe", "turns:a:1?transport=udp"], None, "transport=udp is not possible"),
    (["probe", "a.example", "--timeout", "abc"], None, "--timeout 'abc': expected seconds"),
    (["probe", "a.example", "--timeout", "0"], None, "more than 0 and at most 60"),
    (["probe", "a.example", "--retries", "many"], None, "--retries 'many': expected a whole number from 0 to 10"),
    (["local", "--check", "--no-install", "--ttl", "10y"], None, "--ttl '10y'"),
    (["local", "--check", "--no-install", "--address", "0.0.0.0"], None, "give one address of this machine"),
    (["local", "--check", "--no-install", "--set", "stunPort=abc"], None, "stun-infra:stunPort"),
])
def test_other_bad_input_is_one_line(args, stdin, fragment):
    assert_one_line_error(cli(*args, stdin=stdin, timeout=20), fragment)


# -- what probe plans ------------------------------------------------------------------------

def test_a_bare_host_gets_stun_both_ways_and_tls():
    kinds = [(c.kind, c.endpoint) for c in plan_checks(["stun.example.com"])]
    assert kinds == [("stun-udp", "stun.example.com:3478"), ("stun-tcp", "stun.example.com:3478"),
                     ("tls", "stun.example.com:5349")]


def test_a_secret_adds_a_turn_allocation():
    checks = plan_checks(["198.51.100.7:3479"], tls_port=5350, auth=("u", "p"))
    assert [(c.kind, c.port, c.auth) for c in checks] == [
        ("stun-udp", 3479, None), ("stun-tcp", 3479, None), ("tls", 5350, None), ("turn-udp", 3479, ("u", "p"))]


def test_stack_outputs_probe_every_uri_and_every_public_ip():
    servers = read_servers(json.dumps(OUTPUTS))
    checks = plan_checks(servers.targets(), auth=("u", "p"))
    by_host: dict[str, list[str]] = {}
    for c in checks:
        by_host.setdefault(c.host, []).append(c.kind)
    every = ["stun-udp", "stun-tcp", "tls", "turn-udp", "turn-tcp", "turn-tls"]
    assert by_host == {"turn.example.com": every, "203.0.113.10": every, "203.0.113.11": every}


def test_static_dual_stack_outputs_probe_each_instance_ipv6_address_too():
    servers = read_servers(json.dumps({**OUTPUTS, "public_ipv6s": ["2001:db8::10"]}))
    checks = plan_checks(servers.targets(), auth=("u", "p"))
    assert {c.endpoint for c in checks if c.host == "2001:db8::10"} == {"[2001:db8::10]:3478", "[2001:db8::10]:5349"}


def test_a_dual_stack_name_is_checked_once_per_family():
    checks = split_families(plan_checks(["turn.example.com"]), {"turn.example.com": {4, 6}})
    assert [(c.kind, c.endpoint) for c in checks] == [
        ("stun-udp", "turn.example.com:3478/ipv4"), ("stun-udp", "turn.example.com:3478/ipv6"),
        ("stun-tcp", "turn.example.com:3478/ipv4"), ("stun-tcp", "turn.example.com:3478/ipv6"),
        ("tls", "turn.example.com:5349/ipv4"), ("tls", "turn.example.com:5349/ipv6")]


@pytest.mark.parametrize("families", [{4}, {6}, set()])
def test_a_single_family_name_and_an_address_are_checked_once(families):
    planned = plan_checks(["turn.example.com", "198.51.100.7"])
    assert split_families(planned, {"turn.example.com": families, "198.51.100.7": {4, 6}}) == planned


def test_ice_servers_carry_their_own_credentials():
    ice = {"iceServers": [{"urls": ["stun:a:1"]},
                          {"urls": ["turn:a:1?transport=udp"], "username": "9:x", "credential": "pw"}]}
    servers = read_servers(json.dumps(ice))
    checks = plan_checks(servers.targets(), auth_by_uri=dict(servers.auth_by_uri))
    assert [(c.kind, c.auth) for c in checks] == [("stun-udp", None), ("stun-tcp", None), ("tls", None),
                                                  ("turn-udp", ("9:x", "pw"))]


def test_turn_without_credentials_is_skipped_not_failed():
    assert read_servers('{"stun_uris": ["stun:a:1"]}') == Servers(stun_uris=("stun:a:1",))
    with pytest.raises(InputError):
        read_servers('{"stun_uris": ["stun:a:1"], "turn_shared_secret": ""}')


# -- a closed port: fails cleanly and quickly ----------------------------------------------

def test_probe_of_a_closed_port_fails_cleanly_within_bounded_time():
    stun, tls = free_ports()  # nothing listens there
    started = time.monotonic()
    result = cli("probe", f"{LOOPBACK}:{stun}", "--tls-port", str(tls), "--secret", SECRET,
                 "--timeout", "1", "--retries", "1", timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    line = assert_one_line_error(result, "4 of 4 checks failed")
    assert result.returncode == 1
    assert f"{LOOPBACK}:{stun} stun-udp: no answer within 1s" in line
    assert f"{LOOPBACK}:{stun} stun-tcp: connection refused" in line
    assert f"{LOOPBACK}:{tls} tls: connection refused" in line
    assert "(2 tries)" in line  # the retry happened
    assert "FAIL" in result.stdout  # the table
    assert "probe: 4 checks" in result.stderr  # progress


def test_probe_json_of_a_closed_port():
    stun, tls = free_ports()
    result = cli("probe", f"{LOOPBACK}:{stun}", "--tls-port", str(tls), "--json", "--timeout", "0.5",
                 "--retries", "0", timeout=30)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert [(c["check"], c["status"]) for c in doc["checks"]] == [("stun-udp", "fail"), ("stun-tcp", "fail"),
                                                                   ("tls", "fail")]


# -- coturn missing -------------------------------------------------------------------------

def test_local_without_coturn_says_how_to_install_it(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}  # no turnserver, no apt-get
    result = cli("local", "--check", "--no-install", env=env, timeout=30)
    assert_one_line_error(result, "coturn is not installed", "apt-get install coturn")
