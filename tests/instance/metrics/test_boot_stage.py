"""The `metrics` stage ships exactly the rendered counter files and units, and configure writes its environment."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from stun_infra.instance import binding_counters, metrics
from stun_infra.instance.stage import UNIT_DIR
from tests.support.systemd import verify_units
from tests.conftest import MODES, configure_script, instance_files, settings



def stage(script: str, name: str) -> str:
    match = re.search(rf"^stage {name}\n(.*?)^stage ", script, re.S | re.M)
    assert match, f"no stage {name}"
    return match.group(1)


@pytest.mark.parametrize("mode", MODES)
def test_metrics_stage_ships_the_rendered_ruleset_reporter_and_units(mode):
    s = settings(**MODES[mode])
    files = instance_files(**MODES[mode])
    assert files[binding_counters.RULESET_PATH] == binding_counters.nft_ruleset(s)
    assert files[binding_counters.REPORTER_PATH] == binding_counters.reporter_script(s)
    for unit, text in binding_counters.systemd_units().items():
        assert files[f"{UNIT_DIR}/{unit}"] == text


@pytest.mark.parametrize("mode", MODES)
def test_metrics_stage_writes_the_reporters_environment_file(mode, tmp_path):
    """Region, instance id and private address as the metadata stage read them, the stack's
    namespace: the file the reporter unit's EnvironmentFile names, written by the stage's own lines."""
    body = stage(configure_script(**MODES[mode]), "metrics")
    start = next(i for i, line in enumerate(body.splitlines()) if line.startswith("printf") and "STUN_METRICS" in line)
    printf = "\n".join(body.splitlines()[start:start + 2])
    assert printf.endswith(f'> "{binding_counters.METRICS_ENV_PATH}"'), printf
    target = tmp_path / "metrics.env"
    script = printf.replace(binding_counters.METRICS_ENV_PATH, str(target))
    subprocess.run(["bash", "-euc", script], check=True, timeout=10,
                   env={"PATH": "/usr/bin:/bin", "REGION": "eu-west-3", "INSTANCE_ID": "i-0123456789abcdef0",
                                                     "PRIVATE_IPV4": "10.42.1.23"})
    assert target.read_text().splitlines() == [
        "STUN_METRICS_REGION=eu-west-3", f"STUN_METRICS_NAMESPACE={metrics.namespace('test')}",
        "STUN_METRICS_INSTANCE_ID=i-0123456789abcdef0", "STUN_METRICS_TLS_ADDRESS=10.42.1.23"]
    assert tuple(line.split("=")[0] for line in target.read_text().splitlines()) == binding_counters.METRICS_ENV
    assert f"EnvironmentFile={binding_counters.METRICS_ENV_PATH}" in binding_counters.systemd_units()[
        "stun-metrics.service"]


def test_metrics_stage_enables_the_table_and_the_timer_before_coturn_starts():
    """Only the units with an [Install] section are enabled: the reporter's service has none
    (its timer starts it), so `systemctl enable` would leave it alone anyway."""
    script = configure_script()
    body = stage(script, "metrics")
    assert binding_counters.enabled_units() == ("stun-counters.service", "stun-metrics.timer")
    assert [line for line in body.splitlines() if line.startswith("systemctl ")] == [
        "systemctl daemon-reload",
        "systemctl enable stun-counters.service stun-metrics.timer"]
    assert "\nrestart stun-counters.service stun-metrics.timer\n" in body
    assert script.index("stage metrics") < script.index("restart coturn.service")


INSTALL_CASES = {  # unit text -> whether it carries install info
    "[Service]\nExecStart=/bin/true\n": False,
    "[Service]\nExecStart=/bin/true\n[Install]\n": False,
    "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=\n": False,
    "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nWantedBy=\n": False,
    "[Service]\nExecStart=/bin/true\n[Install]\n# WantedBy=multi-user.target\n": False,
    "[Unit]\nWantedBy=multi-user.target\n[Service]\nExecStart=/bin/true\n": False,  # wrong section
    "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n": True,
    "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=multi-user.target\n": True,
    "[Service]\nExecStart=/bin/true\n[Install]\nAlias=demo-alias.service\n": True,
    "[Service]\nExecStart=/bin/true\n[Install]\nAlso=helper.service\n": True,
}


def _real_systemctl_links(tmp_path, name: str, text: str) -> list[str]:
    root = tmp_path / name
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / name).write_text(text)
    (root / "etc/systemd/system/helper.service").write_text(
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    done = subprocess.run(["systemctl", f"--root={root}", "enable", name], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_symlink())


def test_install_info_is_what_real_systemctl_enable_acts_on(tmp_path):
    """carries_install_info agrees with `systemctl --root=DIR enable` (offline, no systemd
    running): a unit it says has none gets no link; on the metrics units themselves too."""
    if not shutil.which("systemctl"):
        pytest.skip("systemctl is not installed")
    cases = {f"case{i}.service": (text, expected) for i, (text, expected) in enumerate(INSTALL_CASES.items())}
    cases.update({unit: (text, unit in binding_counters.enabled_units())
                  for unit, text in binding_counters.systemd_units().items()})
    for name, (text, expected) in cases.items():
        assert binding_counters.carries_install_info(text) is expected, (name, text)
        assert bool(_real_systemctl_links(tmp_path, name, text)) is expected, (name, text)


def test_units_order_the_table_before_coturn_and_run_the_reporter_every_minute():
    units = binding_counters.systemd_units()
    assert "Before=coturn.service" in units["stun-counters.service"]
    assert "RemainAfterExit=yes" in units["stun-counters.service"]
    assert f"ExecStart=/usr/sbin/nft -f {binding_counters.RULESET_PATH}" in units["stun-counters.service"]
    assert f"ExecStart=/usr/bin/python3 {binding_counters.REPORTER_PATH}" in units["stun-metrics.service"]
    assert "WantedBy=timers.target" in units["stun-metrics.timer"]
    assert "AccuracySec=1s" in units["stun-metrics.timer"]


def test_ruleset_counts_on_the_configured_stun_port():
    ruleset = binding_counters.nft_ruleset(settings(stunPort=3479, relayMinPort=50000, relayMaxPort=50099))
    assert "udp dport 3479 @th,64,16 0x0001" in ruleset
    assert "udp sport 3479 @th,64,16 0x0101" in ruleset and "udp sport 3479 @th,64,16 0x0111" in ruleset
    assert 'udp sport 3479 @th,64,16 0x0103 counter name "allocate_successes"' in ruleset  # TURN Allocate success
    assert "0x0113" not in ruleset  # Allocate errors: every allocation opens with a 401 challenge
    assert "3478" not in ruleset


def test_units_pass_systemd_analyze_verify(tmp_path):
    assert verify_units(tmp_path, binding_counters.systemd_units()) == ""


def test_reporter_unit_runs_as_its_own_user_with_one_capability_confined_to_its_state_directory():
    unit = binding_counters.systemd_units()["stun-metrics.service"]
    assert binding_counters.STATE_PATH == f"/var/lib/{binding_counters.STATE_DIRECTORY}/state.json"
    for line in (f"User={binding_counters.REPORTER_USER}", "DynamicUser=yes",
                 "AmbientCapabilities=CAP_NET_ADMIN", "CapabilityBoundingSet=CAP_NET_ADMIN", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 f"StateDirectory={binding_counters.STATE_DIRECTORY}"):
        assert line in unit.splitlines()
    # the AWS CLI reaches CloudWatch and the metadata service (the role's credentials)
    for blocks_network in ("PrivateNetwork", "IPAddressDeny", "RestrictAddressFamilies"):
        assert blocks_network not in unit
