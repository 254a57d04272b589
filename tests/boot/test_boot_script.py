"""The rendered user data, run by cloud-init on a Debian 12 machine booted with systemd as
PID 1 (see boot_sandbox.py): it must bring up a working coturn from nothing but the metadata
service and Parameter Store, and the instance must come back the same after a reboot.
"""

from __future__ import annotations

import os
import sqlite3
import json
import re
import resource
import time
import urllib.parse
import warnings

import pytest

import boot_sandbox as sb

pytestmark = pytest.mark.boot

# coturn 4.6.1 fails open: these startup lines mean a setting was dropped (FIELD-NOTES.md).
# How much longer than the sync timer's interval a rotation step may take to show: the timer's
# AccuracySec (5 s), the sync's run, the probe's own allocations.
ROTATION_MARGIN_SECONDS = 20
COTURN_BAD_LINES = ("Bad configuration format", "Wrong address format", "CONFIG ERROR",
                    "cannot start TLS and DTLS listeners", "Cannot bind", "cannot bind")


def _tail(run: sb.Boot, n: int = 60) -> str:
    return run.summary(n)


def _conf_value(conf: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in conf.splitlines() if line.startswith(key + "=")]


def test_cloud_init_runs_the_user_data_from_imds_to_completion(booted):
    """cloud-init's EC2 datasource read the user data from the metadata service, byte for byte
    what the launch template carries, ran it, and reports success; systemd's start-up
    finished with no failed unit."""
    from stun_infra.instance.userdata import packed, unpacked

    r = booted.first
    assert (r.status, r.errors, r.returncode, r.script_ran) == ("done", [], 0, True), _tail(r)
    assert r.clean, _tail(r)
    assert "stun-infra: boot complete" in r.output
    fetched = [q for q in booted.imds_requests_during_script if q["path"].endswith("/user-data")]
    assert fetched and fetched[-1]["status"] == 200, fetched
    ran = booted.sandbox.exec("cat", sb.USER_DATA_SCRIPT).stdout
    assert ran == unpacked(packed(booted.user_data)) == booted.user_data
    assert not any(name.endswith("(no end)") for name in r.stages), r.stages
    assert r.stages, "no `stun-infra: stage NAME begin/end` markers in the output"
    log = (booted.sandbox.root / "var/log/stun-infra-boot.log").read_text()
    assert "stun-infra: boot complete" in log, "the boot log does not hold the script's output"


def test_packages_came_from_the_mirror_standin(booted):
    """apt-get update and install really ran, against the mirror's host name."""
    assert booted.first.status == "done", _tail(booted.first)
    mirror = booted.sandbox.requests("mirror")
    assert any(r["path"].endswith("/InRelease") and r["status"] == 200 for r in mirror), mirror[:5]
    debs = [r for r in mirror if r["path"].endswith(".deb")]
    missing = [r["path"] for r in debs if r["status"] != 200]
    assert not missing, f"the script installs packages the rootfs cache did not download: {missing}"
    assert any("/coturn_" in r["path"] for r in debs)
    from stun_infra.instance.package import DEPENDS as PACKAGES
    status = booted.sandbox.root.joinpath("var/lib/dpkg/status").read_text()
    for pkg in PACKAGES:
        assert re.search(rf"^Package: {re.escape(pkg)}\nStatus: install ok installed$", status, re.M), pkg


def test_agents_come_from_their_documented_hosts_and_are_verified_before_install(booted):
    """Each agent .deb and its signature were fetched over HTTPS from the host AWS documents
    (the CloudWatch agent's key file too), and installed only once verified with the pinned
    key (the sandbox's, in place of AWS's) for this instance's architecture."""
    from stun_infra.instance import downloads

    assert booted.first.status == "done", _tail(booted.first)
    box = booted.sandbox
    region, fetched = box.instance.region, box.requests("downloads")
    for agent in downloads.AGENTS:
        url = urllib.parse.urlsplit(agent.url.format(region=region, arch=box.arch))
        for path in (url.path, url.path + ".sig"):
            assert [(r["host"], r["status"]) for r in fetched if r["path"] == path] == [(url.hostname, 200)], path
        if agent.key.url:
            key = urllib.parse.urlsplit(agent.key.url)
            assert [(r["host"], r["status"]) for r in fetched if r["path"] == key.path] == [(key.hostname, 200)]
        verified = f"stun-infra: {agent.name}: signature verified (key {box.signer.fingerprint}), {box.arch} package"
        lines = booted.first.output.splitlines()
        assert verified in lines, agent.name
        assert lines.index(verified) < next(i for i, t in enumerate(lines) if f"Unpacking {agent.name} " in t)


def test_metadata_service_is_used_with_imdsv2_tokens(booted):
    # Ours read /latest/ (cloud-init, which cannot tell it is on AWS in a container, reads
    # dated versions without a token: see standin_servers.imds).
    reqs = [r for r in booted.imds_requests_during_script if r["path"].startswith("/latest/")]
    assert any(r["method"] == "PUT" and r["status"] == 200 for r in reqs), "no IMDSv2 token request"
    gets = [r for r in reqs if r["method"] == "GET"]
    assert gets and all(r["token"] for r in gets), [r for r in gets if not r["token"]]
    assert not [r for r in reqs if r["status"] == 401], "the script made requests the IMDSv2 stand-in refused"
    paths = {r["path"] for r in gets}
    for needed in ("public-ipv4", "local-ipv4", "instance-id", "placement/region"):
        assert f"/latest/meta-data/{needed}" in paths, needed
    # The stand-in enforces IMDSv2 as an instance with http_tokens=required would.
    p = booted.sandbox.exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://{sb.IMDS_IP}/latest/meta-data/instance-id", check=False)
    assert p.stdout.strip() == "401"


def test_external_ip_is_the_instance_public_private_pair(booted):
    assert booted.first.status == "done", _tail(booted.first)
    inst = booted.sandbox.instance
    assert _conf_value(booted.conf(), "external-ip") == [f"{inst.public_ip}/{inst.private_ip}"]


def test_written_conf_equals_stun_infra_render(booted):
    """The heredoc in the script expands to exactly what `stun-infra render` writes for
    the same stack, addresses and secret (and what stun_infra.instance.coturn returns)."""
    from stun_infra.instance.coturn import INSTANCE_PATHS, turnserver_conf

    assert booted.first.status == "done", _tail(booted.first)
    assert booted.conf() == booted.rendered_conf
    inst = booted.sandbox.instance
    assert booted.conf() == turnserver_conf(
        booted.settings, public_ip=inst.public_ip, private_ip=inst.private_ip, turn_secret="",
        paths=INSTANCE_PATHS, ipv6=inst.ipv6, secret_store=True)


def test_ipv6_is_read_from_imds_and_served_when_the_instance_has_one(booted):
    """With an IPv6 address in IMDS the conf (equal to `stun-infra render --ipv6`, above) listens
    and relays on it; without one IMDS answers 404 and the conf is the IPv4-only one."""
    assert booted.first.status == "done", _tail(booted.first)
    inst, conf = booted.sandbox.instance, booted.conf()
    reads = [r for r in booted.imds_requests_during_script if r["path"] == "/latest/meta-data/ipv6"]
    assert reads and all(r["token"] for r in reads)
    assert [r["status"] for r in reads] == [200 if inst.ipv6 else 404]
    assert _conf_value(conf, "listening-ip") == [inst.private_ip, *([inst.ipv6] if inst.ipv6 else [])]
    assert _conf_value(conf, "relay-ip") == ([inst.private_ip, *([inst.ipv6] if inst.ipv6 else [])]
                                             if booted.settings.turn else [])
    assert f"IPv6 {inst.ipv6 or 'none'}" in booted.first.output


def test_coturn_answers_stun_over_ipv6_when_the_instance_has_one(booted):
    box = booted.sandbox
    if not box.instance.ipv6:
        pytest.skip("this instance has no IPv6 address (IMDS 404 path)")
    assert booted.second.status == "done", _tail(booted.second)
    box.stun_binding(box.instance.private_ip, booted.settings.stun_port)  # it is up
    local, mapped = box.stun_binding(box.instance.ipv6, booted.settings.stun_port)
    assert mapped == local and local[0] == sb.CLIENT_IPV6, (local, mapped)


def test_secrets_come_from_parameter_store_not_user_data(booted):
    assert booted.first.status == "done", _tail(booted.first)
    names = booted.parameter_names
    secret = booted.parameters.get(names.turn_secret, "")
    assert _conf_value(booted.conf(), "static-auth-secret") == []  # never in the config
    if booted.settings.turn:  # in coturn's store, put there by the secret sync
        with sqlite3.connect(booted.sandbox.root / "var/lib/turn/turndb") as db:
            assert db.execute("SELECT value FROM turn_secret").fetchall() == [(secret,)]
    for value in booted.parameters.values():
        for line in value.splitlines():
            if "-----" not in line:
                assert line not in booted.user_data
    root = booted.sandbox.root
    assert root.joinpath("etc/coturn/tls/cert.pem").read_text().strip() == booted.parameters[names.tls_certificate]
    assert root.joinpath("etc/coturn/tls/key.pem").read_text().strip() == booted.parameters[names.tls_private_key]
    # Every parameter was read over the regional endpoint, decrypted, signed with the
    # instance role's credentials from the metadata service.
    role_key = booted.sandbox.instance.imds_document(booted.sandbox.arch)["access_key_id"]
    reads = [r for r in booted.sandbox.requests("ssm") if r.get("target") == "AmazonSSM.GetParameter"]
    synced = [r for r in booted.sandbox.requests("ssm") if r.get("target") == "AmazonSSM.GetParameters"]
    for name in booted.parameters:
        if name == names.turn_secret:  # by name, current and previous in one call: a rotation changes no package
            mine = [r for r in synced if r.get("names", [])[:1] == [name]]
        else:
            mine = [r for r in reads if r.get("name") == f"{name}:1"]  # pinned to the version seeded
        assert mine, f"{name}:1 was never read from Parameter Store"
        assert all(r["status"] == 200 and r["with_decryption"] and r["scheme"] == "https" for r in mine), mine
        assert all(r["access_key_id"] == role_key and r["session_token"] for r in mine), mine
        assert all(r["host"] == f"ssm.{booted.sandbox.instance.region}.amazonaws.com" for r in mine), mine


def _package_units(box: sb.Sandbox) -> list[str]:
    """The units the instance package ships (stun-infra's), by name."""
    listed = box.exec("dpkg-query", "-L", "stun-infra-instance").stdout.split()
    return sorted(p.rsplit("/", 1)[1] for p in listed if p.startswith("/lib/systemd/system/")
                  and p.endswith((".service", ".timer")))


def test_the_script_enables_its_units_in_systemd(booted):
    """systemd itself says which units are enabled: each stage's, with install info, and
    coturn; the metrics reporter's service is static (its timer starts it)."""
    assert booted.first.status == "done", _tail(booted.first)
    box = booted.sandbox
    state = {u: box.systemctl("is-enabled", u, check=False).stdout.strip()
             for u in ("coturn.service", "stun-counters.service", "stun-metrics.timer", "stun-metrics.service",
                       "stun-infra-configure.service")}
    assert state == {"coturn.service": "enabled", "stun-counters.service": "enabled", "stun-metrics.timer": "enabled",
                     "stun-metrics.service": "static", "stun-infra-configure.service": "enabled"}, state
    calls = box.calls()
    assert any(c.startswith("amazon-cloudwatch-agent-ctl") and "fetch-config" in c for c in calls), calls
    drop_in = box.root / "lib/systemd/system/coturn.service.d"  # shipped in the package
    assert drop_in.is_dir() and list(drop_in.glob("*.conf"))


def assert_units_healthy(box: sb.Sandbox, boot: sb.Boot) -> None:
    """systemd parsed every unit the package ships without a complaint (an ExecStart it
    rejects, a bad setting: `systemd-analyze verify`), the boot finished with cloud-init's
    success, and no unit is failed or left unloaded."""
    assert boot.clean, _tail(boot)
    units = _package_units(box)
    verify = box.exec("systemd-analyze", "verify", *(f"/lib/systemd/system/{u}" for u in units), check=False)
    said = verify.stdout + verify.stderr
    assert verify.returncode == 0 and not [line for line in said.splitlines() if "stun-" in line], said
    for unit in units:
        assert box.unit_property(unit, "LoadState") == "loaded", (unit, box.journal(unit)[-2000:])
        assert box.unit_property(unit, "Result") == "success", (unit, box.journal(unit)[-2000:])


def test_every_unit_of_the_package_loads_and_none_failed(booted):
    """The boot check above holds; the oneshots ran; the agent was configured with a file
    that exists and is JSON."""
    box = booted.sandbox
    units = _package_units(box)
    assert "stun-infra-configure.service" in units and "stun-counters.service" in units, units
    assert_units_healthy(box, booted.first)
    for oneshot in ("stun-counters.service", "stun-infra-configure.service"):
        assert box.unit_property(oneshot, "ActiveState") == "active", oneshot
    ctl = [c for c in box.calls() if c.startswith("amazon-cloudwatch-agent-ctl") and " -c " in c]
    assert ctl, box.calls()
    for call in ctl:
        source = call.split(" -c ", 1)[1].split()[0]
        assert source.startswith("file:"), call
        json.loads((box.root / source.removeprefix("file:").lstrip("/")).read_text())


def _properties(box: sb.Sandbox, unit: str, *names: str) -> dict[str, str]:
    """What systemd says of `unit`'s settings (`systemctl show -p ...`)."""
    shown = box.systemctl("show", "--all", *(a for n in names for a in ("-p", n)), unit).stdout
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def _every(box: sb.Sandbox, timer: str, count: int = 3) -> list:
    """The next `count` times systemd fires `timer`: its one calendar spec, as the machine's
    systemd normalised it, through the host's `systemd-analyze calendar`."""
    from tests.support.systemd import calendar_elapses

    shown = _properties(box, timer, "TimersCalendar", "TimersMonotonic")
    assert shown.get("TimersMonotonic", "") == "", shown  # a monotonic timer counts from the last run and drifts
    (spec,) = re.findall(r"OnCalendar=(.*?) ;", shown["TimersCalendar"])
    return calendar_elapses(spec, count)


def _argv(exec_start: str) -> str:
    return re.search(r"argv\[\]=(.*?) ;", exec_start)[1]


def test_a_failed_configure_is_run_again_by_systemd_until_it_gives_up_then_reported(booted):
    """configure's unit as systemd loaded it: run again a minute after a failure, not after a
    boot stopped for good, CONFIGURE_ATTEMPTS runs within an interval that holds them all
    (each up to its timeout), then the unit that publishes BootFailed."""
    from stun_infra.instance import package
    from stun_infra.instance.services import CONFIGURE_UNIT
    from tests.support.systemd import timespan_seconds

    shown = _properties(booted.sandbox, CONFIGURE_UNIT, "Restart", "RestartUSec", "RestartPreventExitStatus",
                        "StartLimitBurst", "StartLimitIntervalUSec", "OnFailure", "TimeoutStartUSec")
    assert (shown["Restart"], shown["RestartPreventExitStatus"], shown["StartLimitBurst"], shown["OnFailure"]) == (
        "on-failure", str(package.BOOT_STOPPED_STATUS), str(package.CONFIGURE_ATTEMPTS), package.BOOT_FAILED_UNIT), shown
    restart = timespan_seconds(shown["RestartUSec"])
    assert restart == package.CONFIGURE_RESTART_SECONDS, shown
    assert timespan_seconds(shown["StartLimitIntervalUSec"]) > package.CONFIGURE_ATTEMPTS * (
        timespan_seconds(shown["TimeoutStartUSec"]) + restart), shown


def test_a_boot_that_succeeded_reports_no_failure(booted):
    from stun_infra.instance import package

    assert booted.first.status == "done", _tail(booted.first)
    assert booted.sandbox.unit_property(package.BOOT_FAILED_UNIT, "ExecMainStartTimestampMonotonic") == "0"


def test_the_coturn_log_size_is_checked_every_minute_by_its_own_timer(booted):
    from stun_infra.instance import coturn

    stamps = _every(booted.sandbox, "stun-coturn-logrotate.timer")
    assert {(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])} == {60.0}, stamps
    started = booted.sandbox.unit_property("stun-coturn-logrotate.service", "ExecStart")
    assert _argv(started) == f"/usr/sbin/logrotate --state {coturn.LOGROTATE_STATE} {coturn.LOGROTATE_PATH}", started


def test_the_nft_guard_runs_every_minute_and_after_nftables_starts(booted):
    box = booted.sandbox
    stamps = _every(box, "stun-nft-guard.timer")
    assert {(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])} == {60.0}, stamps
    assert "stun-nft-guard.service" in box.unit_property("nftables.service", "Wants").split()
    assert "nftables.service" in box.unit_property("stun-nft-guard.service", "After").split()


def test_a_failed_ipv6_registration_is_run_again_by_systemd_without_end(booted):
    """The registration's own tries can all fail (a throttled API): systemd starts it again,
    and never stops trying (no start limit)."""
    from stun_infra.instance import nlb_targets
    from tests.support.systemd import timespan_seconds

    box = booted.sandbox
    if nlb_targets.UNIT not in _package_units(box):
        pytest.skip("this stack has no IPv6 target groups")
    shown = _properties(box, nlb_targets.UNIT, "Restart", "RestartUSec", "StartLimitIntervalUSec")
    assert shown["Restart"] == "on-failure", shown
    assert timespan_seconds(shown["RestartUSec"]) == nlb_targets.REGISTER_RETRY_SECONDS, shown
    assert timespan_seconds(shown["StartLimitIntervalUSec"]) == 0, shown


def test_a_reboot_runs_configure_again_changes_nothing_and_downloads_nothing(booted):
    """A reboot: cloud-init does not run the user data again (once per instance);
    stun-infra-configure.service does, before coturn, and finds everything as it was."""
    assert booted.first.status == "done", _tail(booted.first)
    second = booted.second
    assert second.clean, _tail(second)
    assert not second.script_ran
    first, again = booted.manifest_first, booted.manifest_second
    changed = sorted(k for k in set(first) | set(again) if first.get(k) != again.get(k))
    assert not changed, "the reboot changed: " + ", ".join(changed[:40])
    assert booted.conf() == booted.conf_after_first
    refetched = [r["path"] for r in booted.mirror_requests_during_second if r["path"].endswith(".deb")]
    assert not refetched, f"the reboot downloaded packages again: {refetched}"
    box = booted.sandbox
    started = {u: int(box.unit_property(u, "ExecMainStartTimestampMonotonic") or 0)
               for u in ("stun-infra-configure.service", "coturn.service")}
    configured = int(box.unit_property("stun-infra-configure.service", "ExecMainExitTimestampMonotonic"))
    assert 0 < started["stun-infra-configure.service"] < configured <= started["coturn.service"], started


def test_coturn_started_by_systemd_answers_stun(booted):
    """coturn as systemd starts it (unit + drop-in): a binding from inside the namespace is
    answered with the client's own address; it runs as its unit's user with the drop-in's
    open-file limit."""
    assert booted.first.status == "done", _tail(booted.first)
    box = booted.sandbox
    local, mapped = box.stun_binding(box.instance.private_ip, booted.settings.stun_port)
    assert mapped == local and local[0] == sb.CLIENT_IP, (local, mapped)
    # coturn's own client, from the machine, agrees.
    p = box.exec("turnutils_stunclient", "-p", str(booted.settings.stun_port), "-L", sb.CLIENT_IP,
                 box.instance.private_ip, check=False, timeout=60)
    assert re.search(rf"UDP reflexive addr: {re.escape(sb.CLIENT_IP)}:\d+", p.stdout), p.stdout + p.stderr
    pid = box.unit_property("coturn.service", "MainPID")
    status = box.exec("cat", f"/proc/{pid}/status").stdout
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M)[1])
    assert uid == int(box.exec("id", "-u", "turnserver").stdout)
    limits = box.exec("cat", f"/proc/{pid}/limits").stdout
    wanted = box.unit_property("coturn.service", "LimitNOFILE")
    got = re.search(r"^Max open files\s+(\d+)\s+(\d+)\s", limits, re.M)
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if got and int(got[2]) == host_hard < int(wanted):  # a host without CAP_SYS_RESOURCE (this one's limits)
        warnings.warn(f"LimitNOFILE={wanted} could not be applied: this host caps the hard limit at "
                      f"{host_hard} and denies CAP_SYS_RESOURCE; coturn ran with {got[2]}")
    else:
        assert got and got[2] == wanted, (wanted, [line for line in limits.splitlines() if "open files" in line])


def test_coturn_serves_the_project_client(booted):
    """stun_infra.client.turn_client against the booted server, from inside the namespace: STUN
    over UDP and TCP, TLS with the certificate from Parameter Store, and a TURN
    allocation with a credential minted from the secret in Parameter Store, relayed on
    the instance's public address (external-ip)."""
    assert booted.first.status == "done", _tail(booted.first)
    box, settings = booted.sandbox, booted.settings
    box.stun_binding(box.instance.private_ip, settings.stun_port)  # it is up
    cafile = box.workdir / "tls-certificate.pem"
    cafile.write_text(booted.parameters[booted.parameter_names.tls_certificate] + "\n")
    secret = booted.parameters.get(booted.parameter_names.turn_secret, "")
    code = f"""
import asyncio, json
from stun_infra.client import credentials, turn_client as tc
server = ({box.instance.private_ip!r}, {settings.stun_port})
async def main():
    out = {{}}
    b = await tc.stun_binding(server, local_address=({sb.CLIENT_IP!r}, 0))
    out["udp"] = [list(b.mapped_address), list(b.local_address)]
    b = await tc.stun_binding(server, transport="tcp", local_address=({sb.CLIENT_IP!r}, 0))
    out["tcp"] = [list(b.mapped_address), list(b.local_address)]
    h = tc.tls_handshake(({box.instance.private_ip!r}, {settings.tls.coturn_port}),
                         context=tc.tls_context(cafile={str(cafile)!r}), server_name={settings.tls_domain!r})
    out["tls"] = h.version
    if {bool(settings.turn and secret)!r}:
        user, password = credentials.mint({secret!r}, ttl_seconds=600)
        out["relayed"] = list(await tc.allocate(server, user, password))
    print(json.dumps(out))
asyncio.run(main())
"""
    out = box.ns_python(code)
    for transport in ("udp", "tcp"):
        mapped, local = out[transport]
        assert mapped == local and local[0] == sb.CLIENT_IP, (transport, out)
    assert out["tls"] in ("TLSv1.2", "TLSv1.3"), out
    if settings.turn:
        assert out["relayed"][0] == box.instance.public_ip, out
        assert settings.relay_min_port <= out["relayed"][1] <= settings.relay_max_port, out


def test_an_ipv6_client_gets_an_ipv6_relay_that_refuses_internal_ipv6_peers(booted):
    """Over the instance's IPv6 address (from the metadata stand-in): a client that asks for
    an IPv6 relay (REQUESTED-ADDRESS-FAMILY) gets one on that address, one that does not
    gets the IPv4 relay (coturn's default, kept), and the IPv6 relay refuses every internal
    IPv6 peer, in every notation, with 403."""
    assert booted.first.status == "done", _tail(booted.first)
    box, settings = booted.sandbox, booted.settings
    if not (box.instance.ipv6 and settings.turn):
        pytest.skip("this stack's instance has no IPv6 address or serves no TURN")
    secret = booted.parameters[booted.parameter_names.turn_secret]
    code = f"""
import asyncio, json
from stun_infra.client import credentials, turn_client as tc
from tests.support.netns import INTERNAL_IPV6
server = ({box.instance.ipv6!r}, {settings.stun_port})
async def main():
    out = {{"refused": {{}}}}
    async with tc.turn_allocation(server, *credentials.mint({secret!r}, user="v4", ttl_seconds=600),
                                  timeout=3) as relay:
        out["default"] = list(relay.relayed_address)
    async with tc.turn_allocation(server, *credentials.mint({secret!r}, user="v6", ttl_seconds=600),
                                  timeout=3, family=6) as relay:
        out["ipv6"], out["mapped"] = list(relay.relayed_address), list(relay.mapped_address)
        for peer in INTERNAL_IPV6:
            out["refused"][peer] = [await relay.create_permission(peer), await relay.channel_bind((peer, 80))]
    print(json.dumps(out))
asyncio.run(main())
"""
    out = box.ns_python(code)
    assert out["ipv6"][0] == box.instance.ipv6, out
    assert settings.relay_min_port <= out["ipv6"][1] <= settings.relay_max_port, out
    assert ":" in out["mapped"][0], out  # reached over IPv6
    assert out["default"][0] == box.instance.public_ip, out
    assert {peer: codes for peer, codes in out["refused"].items() if codes != [403, 403]} == {}


def test_an_autoscale_instance_registers_its_ipv6_address_in_the_ipv6_target_groups(booted):
    """The unit the boot script enabled ran at boot (as the instance's role, through the ELB
    endpoint stand-in): the instance's IPv6 address, on each group's port, in each IPv6
    target group, once (the reboot's stop took it out and its start put it back)."""
    assert booted.first.status == "done", _tail(booted.first)
    box, settings = booted.sandbox, booted.settings
    groups = sb.ipv6_target_groups(settings)
    if not (groups and box.instance.ipv6):
        pytest.skip("not an autoscale instance with an IPv6 address")
    assert box.unit_property("stun-nlb-targets.service", "ActiveState") == "active"

    def calls(action: str) -> list[tuple[str, list]]:
        entries = [r for r in box.requests("ssm") if r.get("action") == action]
        assert all(r["status"] == 200 and r["session_token"] for r in entries), entries  # the role's credentials
        return sorted((r["target_group"], r["targets"]) for r in entries)

    expected = sorted((g.arn, [[box.instance.ipv6, str(g.port)]]) for g in groups)
    assert calls("RegisterTargets") == sorted(expected * 2)  # the launch, the reboot
    assert calls("DeregisterTargets") == expected  # the reboot's shutdown (ExecStop)


def test_coturn_accepts_every_line_of_the_written_conf(booted):
    assert booted.first.status == "done", _tail(booted.first)
    box = booted.sandbox
    box.stun_binding(box.instance.private_ip, booted.settings.stun_port)  # it is up
    log_file = box.root / "var/log/coturn/turnserver.log"
    sb.wait_until("coturn's log file", log_file.exists, 10)
    text = log_file.read_text() + box.journal("coturn.service")
    bad = [line for line in text.splitlines() if any(b in line for b in COTURN_BAD_LINES)]
    assert not bad, "\n".join(bad)


def test_timer_services_run_after_traffic(booted):
    """What the enabled timers trigger (the metrics reporter, coturn's log rotation, the nftables
    guard; with TURN the secret sync, as coturn's user) runs cleanly when systemd starts it once
    coturn has answered bindings; the kernel binding counters count them."""
    assert booted.first.status == "done", _tail(booted.first)
    box = booted.sandbox
    timers = sorted(line.split()[0] for line in box.systemctl(
        "list-unit-files", "--state=enabled", "--type=timer", "--no-legend", "--plain").stdout.splitlines()
        if line.startswith("stun-"))
    assert timers == sorted(["stun-coturn-logrotate.timer", "stun-metrics.timer", "stun-nft-guard.timer",
                             *(["stun-secret-sync.timer"] if booted.settings.turn else [])]), timers
    for _ in range(3):
        box.stun_binding(box.instance.private_ip, booted.settings.stun_port)
    found = _counters(box)
    print(f"nft counters: {found}")
    assert found["binding_requests"] >= 3 and found["binding_successes"] >= 3, found
    for timer in timers:
        service = timer.removesuffix(".timer") + ".service"
        for _ in range(2):  # beside the timer's own runs
            box.systemctl("start", service, timeout=120)
            assert box.unit_property(service, "Result") == "success", box.journal(service)[-2000:]


def test_reporter_counts_land_in_cloudwatch(booted):
    """The reporter's PutMetricData calls reached CloudWatch (moto, monitoring.<region>.
    amazonaws.com over TLS), signed with the instance role's credentials from IMDSv2: in
    the stack's namespace, every counter metric per instance and for the fleet (no
    dimension), and what they sum to is exactly what the kernel counted since boot."""
    from stun_infra.instance import binding_counters, metrics

    assert booted.first.status == "done", _tail(booted.first)
    box = booted.sandbox
    # Every run publishes what was counted since the one before: its timer's runs and the two
    # test_timer_services_run_after_traffic asked systemd for. Stopped first, so none runs
    # between the last one and the count, nor before what was published is read.
    box.systemctl("stop", "stun-metrics.timer")
    box.systemctl("start", "stun-metrics.service", timeout=120)
    counted = _counters(box)  # no traffic since the last run: all of it was published
    namespace, region, instance_id = metrics.namespace(booted.settings.stack), box.instance.region, box.instance.instance_id
    puts = [r for r in box.requests("ssm") if r.get("action") == "PutMetricData"]
    published = box.ns_python(f"""
import datetime, json
import boto3
cw = boto3.client("cloudwatch", region_name={region!r}, endpoint_url="http://127.0.0.1:{sb.MOTO_PLAIN_PORT}",
                  aws_access_key_id="reader", aws_secret_access_key="reader")
now = datetime.datetime.now(datetime.timezone.utc)
def total(name, dimensions):
    points = cw.get_metric_statistics(Namespace={namespace!r}, MetricName=name, Dimensions=dimensions,
                                      StartTime=now - datetime.timedelta(hours=2), EndTime=now + datetime.timedelta(hours=1),
                                      Period=60, Statistics=["Sum", "SampleCount"])["Datapoints"]
    return [sum(p["Sum"] for p in points), sum(p["SampleCount"] for p in points)]
names = {list(metrics.COUNTER_METRICS) + [metrics.LIVE_SESSIONS]!r}
# Does this moto match a query without dimensions exactly (as CloudWatch does) or sum every
# series of the metric? Asked in a namespace of its own.
cw.put_metric_data(Namespace="Probe/loose", MetricData=[
    {{"MetricName": "m", "Value": 1, "Dimensions": [{{"Name": "d", "Value": "v"}}]}}, {{"MetricName": "m", "Value": 10}}])
loose = cw.get_metric_statistics(Namespace="Probe/loose", MetricName="m", Dimensions=[], Period=60, Statistics=["Sum"],
                                 StartTime=now - datetime.timedelta(hours=1),
                                 EndTime=now + datetime.timedelta(hours=1))["Datapoints"][0]["Sum"] == 11
print(json.dumps({{
    "loose": loose,
    "listed": [[m["Namespace"], m["MetricName"], sorted([d["Name"], d["Value"]] for d in m.get("Dimensions", []))]
               for m in cw.list_metrics(Namespace={namespace!r})["Metrics"]],
    "instance": {{n: total(n, [{{"Name": "InstanceId", "Value": {instance_id!r}}}]) for n in names}},
    "all": {{n: total(n, []) for n in names}},
}}))
""")
    box.systemctl("start", "stun-metrics.timer")
    print("published:", published)

    role_key = box.instance.imds_document(box.arch)["access_key_id"]
    runs = len(puts)
    assert runs >= 1, puts
    for r in puts:
        assert (r["status"], r["scheme"], r["host"], r["namespace"]) == (
            200, "https", f"monitoring.{region}.amazonaws.com", namespace), r
        assert r["access_key_id"] == role_key and r["session_token"], r
    credentials = [r for r in box.requests("imds") if "/iam/security-credentials/" in r["path"]]
    assert credentials and all(r["token"] and r["status"] == 200 for r in credentials), credentials
    # the certificate's days left only where coturn serves TLS itself
    gauges = [g for g in metrics.GAUGE_UNITS
              if g != metrics.CERTIFICATE_DAYS_LEFT or not booted.settings.tls.ends_at_load_balancer]
    # exactly two series per counter metric: this instance's, and the fleet's with no
    # dimension (a set: moto lists a no-dimension metric once per datum)
    assert set(map(json.dumps, published["listed"])) == {
        json.dumps([namespace, m, dims])
        for m in (*metrics.COUNTER_METRICS, *gauges, *([metrics.LIVE_SESSIONS] if booted.settings.turn else []))
        for dims in ([], [["InstanceId", instance_id]])}
    # TURN on: the live sessions went out with every run, beside the counters (their values:
    # the allocations the boot checks held when it ran; tests/instance/metrics counts them exactly)
    live = published["instance"].pop(metrics.LIVE_SESSIONS)
    assert live[1] == (float(runs) if booted.settings.turn else 0.0), published
    by_metric = {c.metric: counted[c.name] for c in binding_counters.COUNTERS}
    assert published["instance"] == {m: [float(n), float(runs)] for m, n in by_metric.items()}, (published, counted)
    # The fleet series (no dimension) sums to the same counts. moto 5.2 answers a query
    # without dimensions with every series of the metric (CloudWatch matches exactly):
    # then the two series above together.
    fleet = {m: [s - i for s, i in zip(published["all"][m], published["instance"][m])] if published["loose"]
             else published["all"][m] for m in by_metric}
    assert fleet == {m: [float(n), float(runs)] for m, n in by_metric.items()}, (published, counted)


def _counters(box: sb.Sandbox) -> dict[str, int]:
    """The kernel counters of the sandbox's namespace: name -> packets."""
    listing = box.exec("nft", "-j", "list", "counters")
    return {c["counter"]["name"]: c["counter"]["packets"]
            for c in json.loads(listing.stdout)["nftables"] if "counter" in c}


def test_secret_files_are_readable_by_coturn_alone(booted):
    root = booted.sandbox.root
    coturn_uid = _passwd_uid(root, "turnserver")
    key = root.joinpath("etc/coturn/tls/key.pem").stat()
    conf = root.joinpath("etc/turnserver.conf").stat()
    assert (oct(key.st_mode & 0o777), key.st_uid) == ("0o600", coturn_uid)
    assert oct(conf.st_mode & 0o777) == "0o640" and conf.st_uid == 0 and conf.st_gid == _group_gid(root, "turnserver")


def _passwd_uid(root, user: str) -> int:
    return next(int(line.split(":")[2]) for line in root.joinpath("etc/passwd").read_text().splitlines()
                if line.split(":")[0] == user)


def _group_gid(root, group: str) -> int:
    return next(int(line.split(":")[2]) for line in root.joinpath("etc/group").read_text().splitlines()
                if line.split(":")[0] == group)


def _rotation_codes(box, settings, secrets: dict[str, str]) -> dict[str, object]:
    """ALLOCATE (then release) against the booted coturn with a credential minted from each
    secret: None when granted, else the STUN error code ("timeout": no answer)."""
    return box.ns_python(f"""
import asyncio, json, os
from stun_infra.client import credentials, turn_client as tc
server = ({box.instance.private_ip!r}, {settings.stun_port})
async def code(secret, user):
    try:
        await tc.allocate(server, *credentials.mint(secret, user=user, ttl_seconds=600))
    except tc.StunError as e:
        return e.code
    except TimeoutError:  # no answer this time (the caller polls again within its bound)
        return "timeout"
    return None
async def main():
    return {{label: await code(secret, "rotation-" + label + "-" + os.urandom(4).hex())
             for label, secret in {secrets!r}.items()}}
print(json.dumps(asyncio.run(main())))
""")


def _put_parameters(box, region: str, put: dict[str, str], delete: tuple[str, ...] = ()) -> None:
    """What `pulumi up` does to Parameter Store in a rotation step, on the moto stand-in."""
    box.ns_python(f"""
import json
import boto3
ssm = boto3.client("ssm", region_name={region!r}, endpoint_url="http://127.0.0.1:{sb.MOTO_PLAIN_PORT}",
                   aws_access_key_id="pulumi", aws_secret_access_key="pulumi")
for name, value in {put!r}.items():
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
for name in {list(delete)!r}:
    ssm.delete_parameter(Name=name)
print(json.dumps(True))
""")


CAP_NET_ADMIN = 1 << 12  # capability(7): its bit in /proc/PID/status's Cap* masks


def _credentials(status: str) -> dict[str, int]:
    """A process's effective uid and capability masks, from its /proc/PID/status."""
    fields = {k: v.split() for k, v in (line.split(":", 1) for line in status.splitlines() if ":" in line)}
    return {"Uid": int(fields["Uid"][1]), **{k: int(fields[k][0], 16)
                                           for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}}


ONE_CAPABILITY = {"CapInh": CAP_NET_ADMIN, "CapPrm": CAP_NET_ADMIN, "CapEff": CAP_NET_ADMIN, "CapBnd": CAP_NET_ADMIN,
                  "CapAmb": CAP_NET_ADMIN}


def _unit_user(box: sb.Sandbox, unit: str) -> dict[str, str]:
    return {p: box.unit_property(unit, p) for p in ("User", "DynamicUser", "AmbientCapabilities",
                                                     "CapabilityBoundingSet")}


def test_the_reporter_runs_as_its_own_user_with_cap_net_admin_alone_and_still_publishes(booted):
    """systemd runs the metrics reporter as an unprivileged user of its own holding
    CAP_NET_ADMIN alone: a process of its unit (a probe added beside the reporter, same
    credentials) shows it; the reporter's run succeeds and saves its state in its own directory
    (its counts reaching CloudWatch: test_reporter_counts_land_in_cloudwatch)."""
    from stun_infra.instance import binding_counters

    assert booted.first.status == "done", _tail(booted.first)
    box, unit = booted.sandbox, "stun-metrics.service"
    assert _unit_user(box, unit) == {"User": binding_counters.REPORTER_USER, "DynamicUser": "yes",
                                     "AmbientCapabilities": "cap_net_admin", "CapabilityBoundingSet": "cap_net_admin"}
    drop_in = f"/run/systemd/system/{unit}.d/zz-credentials-probe.conf"
    box.exec("install", "-D", "-m", "0644", "/dev/null", drop_in)
    box.exec("sh", "-c", f"printf '[Service]\\nExecStartPost=/usr/bin/cat /proc/self/status\\n' > {drop_in}")
    try:
        box.systemctl("daemon-reload")
        box.systemctl("start", unit, timeout=120)
        assert box.unit_property(unit, "Result") == "success", box.journal(unit)[-2000:]
        printed = box.exec("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout
    finally:
        box.exec("rm", "-f", drop_in)
        box.systemctl("daemon-reload")
    status = printed[printed.rindex("Name:\tcat"):]
    credentials = _credentials(status)
    print(f"reporter: {credentials}")
    assert credentials.pop("Uid") != 0
    assert credentials == ONE_CAPABILITY
    state = json.loads(box.exec("cat", binding_counters.STATE_PATH).stdout)
    assert set(state["counters"]) == {c.name for c in binding_counters.COUNTERS}, state


def test_the_drain_watcher_runs_as_its_own_user_with_cap_net_admin_alone(booted):
    """Autoscale: the running drain watcher's process is an unprivileged user of its own
    holding CAP_NET_ADMIN alone (test_drain.py drains with it: the table loaded, the hook completed)."""
    from stun_infra.instance import drain

    if not booted.settings.autoscale:
        pytest.skip("static mode has no watcher (the SSM document runs `stun-drain now` as root)")
    assert booted.first.status == "done", _tail(booted.first)
    box, unit = booted.sandbox, drain.WATCH_UNIT
    assert _unit_user(box, unit) == {"User": drain.WATCH_USER, "DynamicUser": "yes",
                                     "AmbientCapabilities": "cap_net_admin", "CapabilityBoundingSet": "cap_net_admin"}
    pid = box.unit_property(unit, "MainPID")
    assert pid != "0", box.journal(unit)[-2000:]
    credentials = _credentials(box.exec("cat", f"/proc/{pid}/status").stdout)
    print(f"drain watcher: {credentials}")
    assert credentials.pop("Uid") != 0
    assert credentials == ONE_CAPABILITY


def test_the_cloudwatch_agent_runs_as_its_own_user_that_reads_coturns_log_across_a_rotation(booted):
    """The agent's config names the user its package created (run_as_user: the real agent drops
    to it with setgroups, setgid, setuid before it reads anything, which `setpriv --init-groups`
    does here); that user reads coturn's log, also the one a rotation creates, and no other
    unprivileged user can."""
    from stun_infra.instance import cloudwatch_agent, coturn
    from stun_infra.instance.downloads import CLOUDWATCH_AGENT_USER

    assert booted.first.status == "done", _tail(booted.first)
    box, log = booted.sandbox, coturn.INSTANCE_PATHS.log_file
    config = json.loads(box.exec("cat", cloudwatch_agent.CONFIG_PATH).stdout)
    assert config["agent"]["run_as_user"] == CLOUDWATCH_AGENT_USER
    assert box.exec("id", "-u", CLOUDWATCH_AGENT_USER).stdout.strip() != "0"

    def owner(path: str) -> str:
        return box.exec("stat", "-c", "%U %G %a", path).stdout.strip()

    assert owner(os.path.dirname(log)) == f"turnserver {CLOUDWATCH_AGENT_USER} 2750"
    assert owner(log).split()[:2] == ["turnserver", CLOUDWATCH_AGENT_USER]  # as coturn created it
    assert box.exec("head", "-c", "64", log, user=CLOUDWATCH_AGENT_USER).stdout
    box.exec("logrotate", "--force", "--state", coturn.LOGROTATE_STATE, coturn.LOGROTATE_PATH)
    assert owner(log) == f"turnserver {CLOUDWATCH_AGENT_USER} 640"
    box.stun_binding(box.instance.private_ip, booted.settings.stun_port)
    assert box.exec("cat", log, user=CLOUDWATCH_AGENT_USER).returncode == 0
    other = box.exec("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", log, check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr, other


def _last_assignments(merged: str) -> dict[str, str]:
    """key -> value as systemd-sysctl applies them: the last assignment of each key wins."""
    found = {}
    for line in merged.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            found[key.strip().lstrip("-").replace("/", ".")] = value.strip()
    return found


def test_systemd_loads_conntrack_and_sets_the_tables_size_for_the_instance_type_at_boot(booted):
    """The instance's systemd reads the module to load and both keys from the package's files,
    and no other file overrides them. In this container the kernel keeps the host's values:
    systemd-modules-load is skipped (no CAP_SYS_MODULE) and the keys are read-only outside the
    initial network namespace, which systemd-sysctl reports and passes (tests/boot/README.md)."""
    from stun_infra.instance import conntrack

    assert booted.first.status == "done", _tail(booted.first)
    box, size = booted.sandbox, conntrack.table_size(booted.settings.instance_type)
    # the file of that name systemd-modules-load reads (one in /etc would replace it); the whole
    # directory set cannot be listed here: the minbase root lacks kmod's /etc/modules, which
    # Debian's /etc/modules-load.d/modules.conf links to (the AMI has it)
    modules = box.exec("systemd-analyze", "cat-config", "modules-load.d/" + conntrack.MODULES_LOAD_PATH.rsplit("/", 1)[1]).stdout
    assert conntrack.MODULE in [line.strip() for line in modules.splitlines() if not line.startswith("#")], modules
    merged = _last_assignments(box.exec("systemd-analyze", "cat-config", "sysctl.d").stdout)
    assert {k: merged.get(k) for k in ("net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets")} == {
        "net.netfilter.nf_conntrack_max": str(size.entries), "net.netfilter.nf_conntrack_buckets": str(size.entries)}
    assert box.unit_property("systemd-sysctl.service", "Result") == "success"
    assert box.unit_property("systemd-modules-load.service", "ConditionResult") == "no"
    tried = box.exec("env", "SYSTEMD_LOG_LEVEL=debug", "/lib/systemd/systemd-sysctl", "--prefix=/net/netfilter",
                     conntrack.SYSCTL_PATH.rsplit("/", 1)[1])
    said = tried.stdout + tried.stderr
    assert f"Couldn't write '{size.entries}' to 'net/netfilter/nf_conntrack_max'" in said, said
    print(f"conntrack: {size}; in this container: {said.strip().splitlines()[-1]}")


def test_the_instance_picks_up_a_rotation_by_itself_within_the_sync_interval(booted):
    """Steps (a) and (c) of a rotation made in Parameter Store reach the running coturn with no
    restart and nothing done on the instance: systemd's stun-secret-sync.timer runs the sync
    every SYNC_INTERVAL_SECONDS (the README's figure). Within that interval (plus a margin for
    the timer's accuracy and the run) a credential signed with the new secret allocates after
    (a), and one signed with the retired secret gets 401 after (c). Last in this module: the
    seeded secret is retired."""
    from stun_infra.instance import secret_sync

    if not booted.settings.turn:
        pytest.skip("a STUN-only stack has no TURN secret")
    if booted.sandbox.arch != sb.host_arch():
        pytest.skip("the rotation runs on this machine's architecture (emulation adds nothing to it)")
    assert booted.first.status == "done", _tail(booted.first)
    box, settings = booted.sandbox, booted.settings
    assert box.unit_property("stun-secret-sync.timer", "ActiveState") == "active"
    names = secret_sync.SecretParameters.under(settings.ssm_path)
    old, new = booted.parameters[names.current], "sandbox-rotated-" + os.urandom(12).hex()
    box.stun_binding(box.instance.private_ip, settings.stun_port)  # it is up
    bound = secret_sync.SYNC_INTERVAL_SECONDS + ROTATION_MARGIN_SECONDS

    def within_bound(what: str, wanted: dict) -> float:
        started = time.monotonic()
        while (codes := _rotation_codes(box, settings, {"old": old, "new": new})) != wanted:
            assert time.monotonic() - started < bound, f"{what}: still {codes} after {bound} s"
            time.sleep(2)
        return time.monotonic() - started

    _put_parameters(box, box.instance.region, {names.previous: old, names.current: new})  # step (a)
    took_a = within_bound("step (a)", {"old": None, "new": None})
    _put_parameters(box, box.instance.region, {}, delete=(names.previous,))  # step (c)
    took_c = within_bound("step (c)", {"old": 401, "new": None})
    print(f"rotation picked up in {took_a:.0f} s (a) and {took_c:.0f} s (c)")
    assert "stun-secret-sync: 2 secret(s) accepted" in box.journal("stun-secret-sync.service")
