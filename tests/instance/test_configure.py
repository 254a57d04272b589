"""stun-infra-configure (every boot stage) and the files it writes, rendered from templates/."""

from __future__ import annotations

import sqlite3
import json
import os
import re
import shutil
import subprocess

import jsonschema
import pytest

from stun_infra.cli import main
from tests.conftest import AGENT_SCHEMA, MODES, SHARED_AGENT_SCHEMA, configure_script, instance_files, settings, user_data
from stun_infra.instance.coturn import INSTANCE_PATHS, turnserver_conf
from stun_infra.cloud.offline import stack_settings
from stun_infra.instance import package
from stun_infra.instance.boot_inputs import BootInputs, ParameterNames
from stun_infra.instance.cloudwatch_agent import agent_config
from stun_infra.instance.coturn import DROP_IN_PATH, LOGROTATE_PATH



def embedded_confs(script: str) -> dict[str, str]:
    """The two turnserver.conf heredocs: "ipv6" (written when IMDS has an IPv6 address), "ipv4"."""
    found = re.findall(r"<<TURNSERVER_CONF\n(.*?)^TURNSERVER_CONF$", script, re.S | re.M)
    assert len(found) == 2, f"expected two turnserver.conf heredocs, found {len(found)}"
    assert 'if [ -n "${IPV6}" ]; then' in script.split("<<TURNSERVER_CONF")[0].splitlines()[-2]
    return {"ipv6": found[0], "ipv4": found[1]}


def embedded_conf(script: str) -> str:
    return embedded_confs(script)["ipv4"]


def fill(conf: str, ipv6: str = "") -> str:
    return (conf.replace("${PUBLIC_IPV4}", "203.0.113.5").replace("${PRIVATE_IPV4}", "10.42.0.9")
            .replace("${TURN_SECRET}", "s3cr3t-from-ssm").replace("${IPV6}", ipv6))


# A stand-in for curl (no packets): IMDSv2 token on PUT, then reads that must carry it.
FAKE_CURL = r"""#!/bin/bash
printf '%s\n' "$*" >> "${CURL_LOG}"
url="" fail=0 write_out="" token=""
while [ $# -gt 0 ]; do
  case "$1" in
    http*) url="$1" ;;
    -f*) fail=1 ;;
    -w) write_out="$2"; shift ;;
    -H) [[ "$2" == X-aws-ec2-metadata-token:* ]] && token="${2#*: }"; shift ;;
  esac
  shift
done
reply() {  # reply STATUS BODY
  if [ "$1" != 200 ] && [ "${fail}" = 1 ]; then echo "curl: (22) error: $1" >&2; exit 22; fi
  printf '%s' "$2"
  if [ -n "${write_out}" ]; then printf "${write_out//%\{http_code\}/$1}"; fi
  exit 0
}
case "${url}" in
  */api/token) reply 200 test-token ;;
esac
[ "${token}" = test-token ] || reply 401 ""
case "${url}" in
  */meta-data/public-ipv4) reply 200 203.0.113.5 ;;
  */meta-data/local-ipv4) reply 200 10.42.0.9 ;;
  */meta-data/ipv6) if [ -n "${FAKE_IPV6}" ]; then reply 200 "${FAKE_IPV6}"; else reply 404 "<html>404 - Not Found</html>"; fi ;;
  *) reply 404 "" ;;
esac
"""


def run_metadata_stage(tmp_path, ipv6: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The script's metadata reads, from its IMDSv2 token to its IPv6 check, against FAKE_CURL."""
    script = configure_script(mode="autoscale")
    snippet = (script[script.index("retry() {"):script.index("\nrestart()")]
               + script[script.index('INSTANCE_ENV="'):script.index('INSTANCE_ID="$(')]
               + 'echo "IPV6=[${IPV6}]"\n')
    (tmp_path / "bin").mkdir()
    curl = tmp_path / "bin" / "curl"
    curl.write_text(FAKE_CURL)
    curl.chmod(0o755)
    log = tmp_path / "curl.log"
    result = subprocess.run(["bash", "-c", "set -Eeuo pipefail\n" + snippet], capture_output=True, text=True,
                            timeout=30, env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "CURL_LOG": str(log),
                                             "FAKE_IPV6": ipv6})
    return result, log.read_text().splitlines() if log.exists() else []


def test_configure_reads_the_ipv6_address_with_the_token(tmp_path):
    result, calls = run_metadata_stage(tmp_path, "2a05:d012:abc:1200::17")
    assert result.returncode == 0, result.stderr
    assert "IPV6=[2a05:d012:abc:1200::17]" in result.stdout
    (read,) = [c for c in calls if c.endswith("/meta-data/ipv6")]
    assert "X-aws-ec2-metadata-token: test-token" in read
    assert calls[0].startswith("-fsS --max-time 5 -X PUT http://169.254.169.254/latest/api/token")


def test_configure_without_ipv6_tolerates_the_404(tmp_path):
    result, calls = run_metadata_stage(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert "IPV6=[]" in result.stdout and "FAILED" not in result.stderr
    assert len([c for c in calls if c.endswith("/meta-data/ipv6")]) == 1  # a 404 is an answer, not retried


@pytest.mark.parametrize("bad", ["not-an-address", "2001:db8::1 ; rm -rf /", "10.0.0.1", "2001:db8::1\n2001:db8::2"])
def test_configure_refuses_an_ipv6_value_that_is_not_an_address(tmp_path, bad):
    result, _ = run_metadata_stage(tmp_path, bad)
    assert result.returncode == 1 and "stun-infra: bad IPv6" in result.stderr


@pytest.mark.parametrize("mode", MODES)
def test_configure_is_shellcheck_clean(mode, tmp_path):
    if not shutil.which("shellcheck"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run shellcheck (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed")
    script = tmp_path / "stun-infra-configure"
    script.write_text(configure_script(**MODES[mode]))
    result = subprocess.run(["shellcheck", "--severity=info", str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_agent_config_validates_against_the_agents_schema(mode):
    schema = json.loads(AGENT_SCHEMA.read_text())
    jsonschema.Draft4Validator(schema).validate(json.loads(agent_config(settings(**MODES[mode]))))


def test_vendored_agent_schema_is_the_shared_one():
    if not SHARED_AGENT_SCHEMA.exists():
        pytest.skip("no ../shared/schemas next to this clone")
    assert AGENT_SCHEMA.read_bytes() == SHARED_AGENT_SCHEMA.read_bytes()


def test_agent_ships_coturns_log_to_the_stacks_log_group():
    config = json.loads(agent_config(settings()))
    (entry,) = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert entry["file_path"] == INSTANCE_PATHS.log_file and entry["log_group_name"] == "/stun-infra/test/coturn"


@pytest.mark.parametrize("mode", MODES)
def test_embedded_conf_is_the_rendered_conf_once_the_shell_fills_it_in(mode):
    s = settings(**MODES[mode])
    assert fill(embedded_conf(configure_script(**MODES[mode]))) == turnserver_conf(
        s, public_ip="203.0.113.5", private_ip="10.42.0.9", turn_secret="", paths=INSTANCE_PATHS, secret_store=True)


@pytest.mark.parametrize("mode", MODES)
def test_embedded_ipv6_conf_is_the_rendered_conf_with_the_instances_ipv6(mode):
    s = settings(**MODES[mode])
    conf = fill(embedded_confs(configure_script(**MODES[mode]))["ipv6"], "2001:db8:7::17")
    assert conf == turnserver_conf(s, public_ip="203.0.113.5", private_ip="10.42.0.9",
                                   turn_secret="", paths=INSTANCE_PATHS, ipv6="2001:db8:7::17", secret_store=True)
    assert "listening-ip=2001:db8:7::17" in conf.splitlines()
    assert ("relay-ip=2001:db8:7::17" in conf.splitlines()) == s.turn
    assert "external-ip=203.0.113.5/10.42.0.9" in conf.splitlines()  # no NAT mapping for IPv6


def test_conf_without_ipv6_has_no_ipv6_listener():
    conf = turnserver_conf(settings(), public_ip="203.0.113.5", private_ip="10.42.0.9", turn_secret="x",
                           paths=INSTANCE_PATHS)
    assert _conf_values(conf, "listening-ip") == ["10.42.0.9"] and _conf_values(conf, "relay-ip") == ["10.42.0.9"]


def _conf_values(conf: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in conf.splitlines() if line.startswith(key + "=")]


def test_embedded_conf_has_no_shell_syntax_but_the_boot_values():
    confs = embedded_confs(configure_script())
    assert set(re.findall(r"\$\{?\w+\}?|`", confs["ipv4"])) == {"${PUBLIC_IPV4}", "${PRIVATE_IPV4}"}
    assert set(re.findall(r"\$\{?\w+\}?|`", confs["ipv6"])) == {"${PUBLIC_IPV4}", "${PRIVATE_IPV4}",
                                                                 "${IPV6}"}


def test_configure_reads_the_tls_secrets_from_their_parameters_and_the_turn_secret_through_the_sync():
    script = configure_script()
    for name in ("tls-certificate", "tls-private-key"):
        assert f'parameter "/stun-infra/test/{name}"' in script
    assert 'parameter "/stun-infra/test/turn-shared-secret' not in script
    assert 'runuser -u turnserver -- "/usr/local/sbin/stun-secret-sync" --region "${REGION}"' in script


def test_pinned_parameter_names_carry_their_versions():
    names = ParameterNames.under("/stun-infra/x", True).at(turn_secret=3, tls_certificate=2, tls_private_key=None)
    assert names == ParameterNames("/stun-infra/x/turn-shared-secret:3", "/stun-infra/x/tls-certificate:2",
                                   "/stun-infra/x/tls-private-key")
    assert ParameterNames.under("/s", False).at(1, 1, 1).turn_secret == ""


def test_render_pins_parameter_versions_on_request(tmp_path):
    assert main(["render", "--out", str(tmp_path), "--parameter-version", "4"]) == 0
    assert 'parameter "/stun-infra/dev/tls-private-key:4"' in (tmp_path / "stun-infra-configure").read_text()


def test_stun_only_configure_reads_no_turn_secret():
    script = configure_script(turn="false")
    assert "turn-shared-secret" not in script and "TURN_SECRET=" not in script


def test_configure_uses_imdsv2_tokens():
    script = configure_script()
    assert "X-aws-ec2-metadata-token-ttl-seconds" in script and "X-aws-ec2-metadata-token:" in script


def test_the_package_keeps_coturn_running():
    drop_in = instance_files()[DROP_IN_PATH]
    assert "Restart=always" in drop_in and "LimitNOFILE=" in drop_in and "RestartSec=" in drop_in


def test_no_package_starts_a_service_before_configure_configures_it():
    script = user_data()
    guard = script.index("printf '#!/bin/sh\\\\nexit 101'>$R")
    assert guard < script.index("$a install --no-install-recommends") < script.index("rm $R") < script.index(
        "stun-infra-configure")
    configure = configure_script()
    assert configure.index("\ninstall_agent amazon-ssm-agent") < configure.index("stage services")


def test_coturn_stays_disabled_until_its_config_is_written():
    script = configure_script()
    disabled = script.index("systemctl disable --quiet coturn.service")
    assert disabled < script.index("stage metadata") and script.count("coturn.service") == 3  # disable, enable, restart
    assert disabled < script.index("systemctl enable coturn.service") and "stage services" in script[
        script.index("mv -f /etc/turnserver.conf.new"):script.index("systemctl enable coturn.service")]


def test_package_installs_wait_for_the_dpkg_lock():
    script = configure_script()
    installs = [line for line in script.splitlines() if "apt-get" in line and " install " in line]
    assert len(installs) == 1 and all("DPkg::Lock::Timeout=300" in line for line in installs)
    assert "a='apt-get -qyo DPkg::Lock::Timeout=300'" in user_data()
    assert "dpkg -i" not in script + user_data()


def test_a_listening_port_below_1024_lets_coturns_user_bind_it():
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in instance_files(tlsPorts="[443]")[DROP_IN_PATH]


def test_no_capability_is_granted_for_unprivileged_ports():
    assert "AmbientCapabilities" not in instance_files()[DROP_IN_PATH]


def test_the_package_rotates_coturns_log():
    rotation = instance_files()[LOGROTATE_PATH]
    assert f"\n{INSTANCE_PATHS.log_file} {{\n" in rotation and "kill -s HUP coturn" in rotation


def test_render_writes_the_instance_files_and_a_local_certificate(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path), "--turn-secret", "from-the-test"]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"user-data.py", "stun-infra-instance.deb", "stun-infra-configure",
                                                     "turnserver.conf",
                                                     "amazon-cloudwatch-agent.json", "cert.pem", "key.pem"}
    conf = (tmp_path / "turnserver.conf").read_text()
    assert f"cert={tmp_path}/cert.pem" in conf and f"userdb={tmp_path}/turndb" in conf
    with sqlite3.connect(tmp_path / "turndb") as db:
        assert db.execute("SELECT value FROM turn_secret").fetchall() == [("from-the-test",)]
    assert oct((tmp_path / "turnserver.conf").stat().st_mode & 0o777) == "0o600"


def test_render_with_instance_paths_equals_what_the_instance_writes(tmp_path):
    assert main(["render", "--out", str(tmp_path), "--instance-paths", "--public-ip", "203.0.113.5",
                 "--private-ip", "10.42.0.9", "--turn-secret", "from-the-test"]) == 0
    dev = stack_settings("dev")
    assert (tmp_path / "turnserver.conf").read_text() == turnserver_conf(
        dev, public_ip="203.0.113.5", private_ip="10.42.0.9", turn_secret="", paths=INSTANCE_PATHS, secret_store=True)
    boot = BootInputs(ParameterNames.under(dev.ssm_path, True), expected_public_ip="203.0.113.5")
    assert (tmp_path / "stun-infra-configure").read_text() == package.configure_script(dev, boot)
    assert (tmp_path / "stun-infra-instance.deb").read_bytes() == package.build(dev, boot).data


def test_render_with_ipv6_equals_what_an_instance_with_ipv6_writes(tmp_path):
    assert main(["render", "--out", str(tmp_path), "--instance-paths", "--public-ip", "203.0.113.5",
                 "--private-ip", "10.42.0.9", "--ipv6", "2001:db8:7::17", "--turn-secret", "s3cr3t-from-ssm"]) == 0
    assert (tmp_path / "turnserver.conf").read_text() == fill(
        embedded_confs((tmp_path / "stun-infra-configure").read_text())["ipv6"], "2001:db8:7::17")


def test_render_refuses_a_bad_ipv6(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path), "--ipv6", "10.0.0.1"]) == 2
    assert "--ipv6: got '10.0.0.1', must be an IPv6 unicast address" in capsys.readouterr().err


def test_render_refuses_a_bad_address(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path), "--public-ip", "not-an-ip"]) == 2
    assert "--public-ip: got 'not-an-ip', must be an IPv4 address" in capsys.readouterr().err


def test_render_refuses_bad_config_like_pulumi_up(tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path), "--set", "relayMinPort=3000"]) == 2
    assert "stun-infra:relayMinPort: the relay range 3000-65535 overlaps stun-infra:stunPort" in capsys.readouterr().err
