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
from tests.support.debs import files_of

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

@pytest.mark.parametrize("text, seconds", [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400),
                                           ("24h", 86400), ("90", 90), (" 1H ", 3600)])
def test_ttl_forms(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("ttl", ["0", "0s", "abc", "10y", "25h", "2d", "-5m", "1.5h", ""])
def test_bad_ttl_is_one_line_naming_the_allowed_forms(ttl):
    result = cli("credentials", "--secret", SECRET, f"--ttl={ttl}", "turn.example.com")
    line = assert_one_line_error(result, f"--ttl {ttl!r}", "30s, 15m, 1h or 1d", "24h")
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


# -- hosts, ports and users of the client commands ------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["credentials", "--secret", SECRET, "--tls-port", "70000", "turn.example.com"],
     "--tls-port: port '70000' must be a number from 1 to 65535"),
    (["probe", "--tls-port", "0", "turn.example.com"], "--tls-port: port '0' must be a number from 1 to 65535"),
    (["probe", "--tls-port", "abc", "turn.example.com"], "--tls-port: port 'abc'"),
    (["credentials", "--secret", SECRET, "turn.example.com:0"], "port '0' must be a number from 1 to 65535"),
    (["credentials", "--secret", SECRET, "--", "-turn.example.com"], "is not a host name"),
    (["credentials", "--secret", SECRET, "turn..example.com"], "is not a host name"),
    (["credentials", "--secret", SECRET, "999.1.1.1"], "is not a host name"),
    (["probe", "turn_1.example.com"], "is not a host name"),
    (["credentials", "--secret", SECRET, "--user", "u" * 502, "turn.example.com"],
     "at most 512 bytes, so at most 501 for the user"),
])
def test_client_ports_hosts_and_users_coturn_would_refuse_are_one_line(args, fragment):
    line = assert_one_line_error(cli(*args, timeout=20), fragment)
    assert SECRET not in line


@pytest.mark.parametrize("host", ["turn.example.com", "turn.example.com.", "a-b.c", "203.0.113.10", "localhost"])
def test_real_host_names_and_addresses_are_accepted(host):
    assert plan_checks([host])[0].host == host


def test_deeply_nested_json_on_stdin_is_one_line():
    assert_one_line_error(cli("probe", "-", stdin="[" * 100_000, timeout=20), "nested too deeply")


# -- render and local: nothing reaches turnserver.conf unchecked -----------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--ipv6", "fe80::1%eth0\nallowed-peer-ip=10.0.0.1"], "must be an IPv6 unicast address without a zone"),
    (["--ipv6", "fe80::1%eth0"], "without a zone"),
    (["--ipv6", "ff02::1"], "unicast"),
    (["--turn-secret", "x\nallowed-peer-ip=10.0.0.1"], "--turn-secret: must be 1-256 visible ASCII characters"),
    (["--turn-secret", "has space"], "no spaces or line breaks"),
    (["--turn-secret", "s" * 257], "1-256"),
    (["--public-ip", "203.0.113.1\nallowed-peer-ip=10.0.0.1"], "--public-ip: got '203.0.113.1\\nallowed"),
])
def test_render_arguments_that_would_inject_a_line_are_refused(tmp_path: Path, args, fragment):
    line = assert_one_line_error(cli("render", "--out", str(tmp_path / "out"), *args), fragment)
    assert "allowed-peer-ip=10.0.0.1\n" not in line and not (tmp_path / "out").exists()
    assert "x\nallowed" not in line


def test_a_secret_from_the_environment_is_checked_and_never_shown(tmp_path: Path):
    env = {**os.environ, "STUN_INFRA_TURN_SECRET": "abc\nallowed-peer-ip=10.0.0.1"}
    line = assert_one_line_error(cli("render", "--out", str(tmp_path), env=env), "$STUN_INFRA_TURN_SECRET: must be")
    assert "abc" not in line


@pytest.mark.parametrize("command", [["render", "--out"], ["local", "--check", "--no-install", "--dir"]])
def test_a_folder_with_a_line_break_is_refused_before_it_reaches_the_config(tmp_path: Path, command):
    folder = tmp_path / "a\nallowed-peer-ip=10.0.0.1"
    assert_one_line_error(cli(*command, str(folder), timeout=20), "line break or control character")
    assert not folder.exists()


@pytest.mark.parametrize("args", [["--ipv6", "fe80::1%lo\nallowed-peer-ip=10.0.0.1"], ["--ipv6", "fe80::1%lo"]])
def test_local_addresses_with_a_zone_are_refused(args):
    line = assert_one_line_error(cli("local", "--check", "--no-install", *args, timeout=20), "without a %zone")
    assert "\nallowed" not in line


def test_an_unwritable_out_folder_is_one_line(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(cli("render", "--out", str(blocker / "sub")), "--out", "cannot write there")


def test_render_with_a_long_tls_domain_writes_a_certificate_naming_it(tmp_path: Path):
    """A common name holds 64 characters; a DNS name up to 253: the name goes in subjectAltName."""
    domain = "a" * 60 + ".b" * 20 + ".example.com"
    result = cli("render", "--out", str(tmp_path), "--set", f"tlsDomain={domain}")
    assert result.returncode == 0, result.stderr
    from cryptography import x509
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [domain]


# -- stack files, stack names, PULUMI_CONFIG -------------------------------------------------

def assert_config_error(result, fragment: str) -> None:
    """One `error: invalid stack config` (its problems listed below it, as `pulumi up` shows them)."""
    assert_one_line_error(result)
    assert fragment in result.stderr and "\x1b" not in result.stderr, result.stderr

@pytest.mark.parametrize("command", [["plan"], ["render", "--out", "/nonexistent-11a"], ["local", "--check", "--no-install"]])
def test_a_300_character_stack_name_is_one_error(command):
    assert_config_error(cli(*command, "--stack", "s" * 300, timeout=20), "stack name: got 'sss")


def test_a_malformed_pulumi_config_is_one_error():
    env = {**os.environ, "PULUMI_CONFIG": "{not json"}
    assert_config_error(cli("plan", env=env, timeout=60), "PULUMI_CONFIG: must be a JSON object")


@pytest.mark.parametrize("text, fragment", [
    ("config: [\n", "is not valid YAML"), ("- just\n- a list\n", "must be a map with a `config:` map"),
    ("config:\n  instanceCount: 3\n", "instanceCount: has no namespace"),
])
def test_a_broken_stack_file_is_one_error(text, fragment):
    """Plan reads Pulumi.<stack>.yaml from the project: a throwaway stack file there, removed after."""
    stack = f"broken{os.getpid()}"
    path = Path(__file__).resolve().parents[2] / f"Pulumi.{stack}.yaml"
    path.write_text(text)
    try:
        assert_config_error(cli("plan", "--stack", stack, timeout=60), fragment)
    finally:
        path.unlink()


# -- render for a stack with a zone: the ACM certificate's ARN --------------------------------

ZONE_SETS = ("--set", "dnsZoneId=Z0123456789ABCDEFGHIJ", "--set", "dnsName=turn.example.com")
ACM_ARN = "arn:aws:acm:eu-west-3:123456789012:certificate/0123abcd-0000-4000-8000-000000000000"


def test_render_of_a_static_zone_stack_needs_the_certificate_arn(tmp_path: Path):
    assert_one_line_error(cli("render", "--out", str(tmp_path / "out"), *ZONE_SETS),
                          "--certificate-arn", "pulumi stack output tls_certificate_arn")


@pytest.mark.parametrize("arn", ['arn:aws:acm:eu-west-3:123456789012:certificate/x";reboot;"',
                                 "arn:aws:acm:eu-west-3:123456789012:certificate/x\nid"])
def test_render_refuses_a_certificate_arn_that_would_break_out_of_the_script(tmp_path: Path, arn):
    line = assert_one_line_error(cli("render", "--out", str(tmp_path / "out"), *ZONE_SETS, "--certificate-arn", arn),
                                 "--certificate-arn", "must be an ACM certificate ARN")
    assert "\n" not in line and not (tmp_path / "out").exists()


def test_render_of_a_static_zone_stack_exports_the_certificate_and_reads_no_tls_parameter(tmp_path: Path):
    result = cli("render", "--out", str(tmp_path), *ZONE_SETS, "--certificate-arn", ACM_ARN)
    assert result.returncode == 0, result.stderr
    shipped = "\n".join(files_of((tmp_path / "stun-infra-instance.deb").read_bytes()).values())
    assert f'ARN="{ACM_ARN}"' in shipped and "tls-certificate" not in shipped


# -- render for an autoscale dual-stack stack: the load balancer's IPv6 target groups ----------

TG_ARN = "arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/stun-infra-dev-stun-v6/0123456789abcdef"


def test_render_of_an_autoscale_dual_stack_stack_registers_in_the_given_ipv6_groups(tmp_path: Path):
    result = cli("render", "--out", str(tmp_path), "--set", "mode=autoscale", "--ipv6-target-group", f"{TG_ARN}=3478")
    assert result.returncode == 0, result.stderr
    shipped = "\n".join(files_of((tmp_path / "stun-infra-instance.deb").read_bytes()).values())
    assert f'--target-group-arn "{TG_ARN}"' in shipped and 'Port=3478"' in shipped


@pytest.mark.parametrize("value,fragment", [
    (f'{TG_ARN}";reboot;"=3478', "must be ARN=PORT"), (f"{TG_ARN}\nid=3478", "must be ARN=PORT"),
    (f"{TG_ARN}=http", "must be ARN=PORT"), (TG_ARN, "must be ARN=PORT")])
def test_render_refuses_an_ipv6_target_group_that_is_not_arn_and_port(tmp_path: Path, value, fragment):
    line = assert_one_line_error(cli("render", "--out", str(tmp_path / "out"), "--set", "mode=autoscale",
                                     "--ipv6-target-group", value), "--ipv6-target-group", fragment)
    assert "\n" not in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("sets", [[], ["--set", "mode=autoscale", "--set", "ipv6=false"]])
def test_render_takes_ipv6_target_groups_only_for_an_autoscale_dual_stack_stack(tmp_path: Path, sets):
    assert_one_line_error(cli("render", "--out", str(tmp_path / "out"), *sets, "--ipv6-target-group",
                              f"{TG_ARN}=3478"), "--ipv6-target-group", "only autoscale mode with stun-infra:ipv6")
