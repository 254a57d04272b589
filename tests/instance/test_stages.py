"""One shape for every boot stage, one ordered list of them, one configure that runs them."""

from __future__ import annotations

import re

import pytest

from stun_infra.instance import package, stages
from stun_infra.instance.stage import InstanceFile, Stage
from tests.conftest import MODES, boot_inputs


def names(**raw: str) -> list[str]:
    return [s.name for s in stages.stages(*boot_inputs(**raw))]


def test_stages_run_in_the_registered_order():
    assert names() == ["metadata", "agents", "secrets", "secret-sync", "coturn", "conntrack", "cloudwatch-agent", "metrics",
                       "drain", "nft-guard", "services"]
    assert names(mode="autoscale", ipv6="true") == ["metadata", "agents", "warm-pool", "secrets", "secret-sync", "coturn",
                                                    "conntrack", "cloudwatch-agent", "metrics", "drain", "nft-guard",
                                                    "services", "launch"]


def test_a_stage_only_some_stacks_have_is_left_out_of_the_others():
    zone = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}
    assert "tls-sync" in names(**zone) and "tls-sync" not in names()
    assert "tls-ports" in names(tlsPorts="[443, 5349]") and "tls-ports" not in names()


@pytest.mark.parametrize("mode", MODES)
def test_configure_begins_and_ends_each_stage_in_order_with_its_time(mode):
    s, boot = boot_inputs(**MODES[mode])
    script = package.configure_script(s, boot)
    begun = re.findall(r"^stage ([a-z-]+)$", script, re.M)
    assert begun == [st.name for st in stages.stages(s, boot)] and script.count("\nstage \"\"\n") == 1
    assert "printf 'stun-infra: stage %s end (%d.%02d s)\\n'" in script
    assert 'echo "stun-infra: stage ${STAGE} begin"' in script and script.rstrip().endswith("boot complete\"")


def test_a_stage_enables_and_restarts_its_units_once_its_script_is_done():
    s, boot = boot_inputs()
    script = package.configure_script(s, boot)
    body = script[script.index("\nstage drain\n"):script.index("\nstage services\n")]
    assert body.index('printf') < body.index("systemctl daemon-reload") < body.index("systemctl enable") \
        < body.index("\nrestart ")


def test_a_new_stage_is_a_module_and_one_line_in_the_list(monkeypatch):
    """What README's "where things go" promises: a function returning a Stage, one line in
    STAGES; its files land in the package and configure runs it where it is listed."""
    extra = Stage("example-sync", files=(InstanceFile("/usr/local/sbin/example-sync", "#!/bin/sh\n", 0o755),),
                  units={"example-sync.service": "[Service]\nExecStart=/usr/local/sbin/example-sync\n"
                                                 "[Install]\nWantedBy=multi-user.target\n"},
                  enable=("example-sync.service",), script='echo "example ${REGION}"\n')
    listed = list(stages.STAGES)
    listed.insert(listed.index(stages.secrets.stage) + 1, lambda settings, boot: extra)
    monkeypatch.setattr(stages, "STAGES", tuple(listed))
    s, boot = boot_inputs()
    script = package.configure_script(s, boot)
    assert script.index("stage secrets") < script.index("stage example-sync") < script.index("stage coturn")
    assert "systemctl enable example-sync.service\nrestart example-sync.service\n" in script
    shipped = {f.path for f in package.instance_files(s, boot)}
    assert {"/usr/local/sbin/example-sync", "/lib/systemd/system/example-sync.service"} <= shipped


@pytest.mark.parametrize("name", ["", "Metadata", "two words", "x;y"])
def test_a_stage_name_is_lower_case_words(name):
    with pytest.raises(ValueError):
        Stage(name)


@pytest.mark.parametrize("path", ["relative/x", "/etc/../x", "/etc/x y", "/etc/x\n"])
def test_a_file_path_is_absolute_and_plain(path):
    with pytest.raises(ValueError):
        InstanceFile(path, "")


def test_two_stages_shipping_one_path_is_an_error(monkeypatch):
    twice = Stage("twice", files=(InstanceFile(package.CONFIGURE_PATH, ""),))
    monkeypatch.setattr(stages, "STAGES", (*stages.STAGES, lambda settings, boot: twice))
    with pytest.raises(ValueError, match="two stages ship the same path"):
        package.instance_files(*boot_inputs())


def test_no_shipped_file_names_a_source_path_that_does_not_exist():
    """Comments in what runs on an instance point at this repository's files: each must exist."""
    from stun_infra.settings import PROJECT_ROOT
    s, boot = boot_inputs(mode="autoscale", ipv6="true")
    for f in package.instance_files(s, boot):
        for path in re.findall(r"\b((?:stun_infra|templates|tests)/[\w./-]+\.(?:py|j2|md))", f.text):
            assert (PROJECT_ROOT / path).exists(), (f.path, path)


@pytest.mark.parametrize("mode", MODES)
def test_coturn_starts_only_once_this_starts_configure_has_readied_its_files(mode):
    """The mark coturn's drop-in asserts is removed before the first stage and written only
    in the services stage, before coturn is enabled: a start whose configure fails earlier
    does not serve with the last start's config (the assertion and the order as systemd
    reads them: tests/boot/test_boot_restart.py)."""
    from stun_infra.instance.services import CONFIGURED

    s, boot = boot_inputs(**MODES[mode])
    script = package.configure_script(s, boot)
    services = script[script.index("\nstage services\n"):]
    assert script.index(f"rm -f {CONFIGURED}\n") < script.index("\nstage metadata\n")
    commands = [line for line in script.splitlines() if CONFIGURED in line and not line.startswith("#")]
    assert len(commands) == 2 and services.index(CONFIGURED) < services.index("systemctl enable coturn")


def test_only_a_turn_stack_syncs_turn_secrets():
    assert "secret-sync" in names() and "secret-sync" not in names(turn="false")
