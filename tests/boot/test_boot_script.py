"""The rendered user-data, executed for real in a Debian 12 sandbox (see boot_sandbox.py):
it must bring up a working coturn from nothing but the metadata service and Parameter Store.
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
COTURN_BAD_LINES = ("Bad configuration format", "Wrong address format", "CONFIG ERROR",
                    "cannot start TLS and DTLS listeners", "Cannot bind", "cannot bind")


def _tail(run: sb.ScriptRun, n: int = 60) -> str:
    return "\n".join(text for _, text in run.lines[-n:])


def _conf_value(conf: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in conf.splitlines() if line.startswith(key + "=")]


def test_script_runs_to_completion(booted):
    r = booted.first
    assert r.returncode == 0, f"user-data failed (exit {r.returncode}):\n{_tail(r)}"
    assert "stun-infra: boot complete" in r.output
    assert not any(name.endswith("(no end)") for name in r.stages), r.stages
    assert r.stages, "no `stun-infra: stage NAME begin/end` markers in the output"
    log = (booted.sandbox.root / "var/log/stun-infra-boot.log").read_text()
    assert "stun-infra: boot complete" in log, "the boot log does not hold the script's output"


def test_packages_came_from_the_mirror_standin(booted):
    """apt-get update and install really ran, against the mirror's host name."""
    assert booted.first.returncode == 0, _tail(booted.first)
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

    assert booted.first.returncode == 0, _tail(booted.first)
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
        lines = [text for _, text in booted.first.lines]
        assert verified in lines, agent.name
        assert lines.index(verified) < next(i for i, t in enumerate(lines) if f"Unpacking {agent.name} " in t)


def test_metadata_service_is_used_with_imdsv2_tokens(booted):
    reqs = booted.imds_requests_during_script
    assert any(r["method"] == "PUT" and r["status"] == 200 for r in reqs), "no IMDSv2 token request"
    gets = [r for r in reqs if r["method"] == "GET"]
    assert gets and all(r["token"] for r in gets), [r for r in gets if not r["token"]]
    assert not [r for r in reqs if r["status"] == 401], "the script made requests the IMDSv2 stand-in refused"
    paths = {r["path"] for r in gets}
    for needed in ("public-ipv4", "local-ipv4", "instance-id", "placement/region"):
        assert f"/latest/meta-data/{needed}" in paths, needed
    # The stand-in enforces IMDSv2 as an instance with http_tokens=required would.
    p = sb.run(booted.sandbox.chroot("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     f"http://{sb.IMDS_IP}/latest/meta-data/instance-id"), check=False)
    assert p.stdout.strip() == "401"


def test_external_ip_is_the_instance_public_private_pair(booted):
    assert booted.first.returncode == 0, _tail(booted.first)
    inst = booted.sandbox.instance
    assert _conf_value(booted.conf(), "external-ip") == [f"{inst.public_ip}/{inst.private_ip}"]


def test_written_conf_equals_stun_infra_render(booted):
    """The heredoc in the script expands to exactly what `stun-infra render` writes for
    the same stack, addresses and secret (and what stun_infra.instance.coturn returns)."""
    from stun_infra.instance.coturn import INSTANCE_PATHS, turnserver_conf

    assert booted.first.returncode == 0, _tail(booted.first)
    assert booted.conf() == booted.rendered_conf
    inst = booted.sandbox.instance
    assert booted.conf() == turnserver_conf(
        booted.settings, public_ip=inst.public_ip, private_ip=inst.private_ip, turn_secret="",
        paths=INSTANCE_PATHS, ipv6=inst.ipv6, secret_store=True)


def test_ipv6_is_read_from_imds_and_served_when_the_instance_has_one(booted):
    """With an IPv6 address in IMDS the conf (equal to `stun-infra render --ipv6`, above) listens
    and relays on it; without one IMDS answers 404 and the conf is the IPv4-only one."""
    assert booted.first.returncode == 0, _tail(booted.first)
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
    assert booted.second.returncode == 0, _tail(booted.second)
    box.stun_binding(box.instance.private_ip, booted.settings.stun_port)  # it is up
    local, mapped = box.stun_binding(box.instance.ipv6, booted.settings.stun_port)
    assert mapped == local and local[0] == sb.CLIENT_IPV6, (local, mapped)


def test_secrets_come_from_parameter_store_not_user_data(booted):
    assert booted.first.returncode == 0, _tail(booted.first)
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


def test_services_are_enabled_through_the_init_system(booted):
    assert booted.first.returncode == 0, _tail(booted.first)
    calls = booted.sandbox.calls()
    assert any(c.startswith("systemctl enable") and "coturn" in c for c in calls), calls
    assert any(c.startswith("systemctl restart coturn") for c in calls), calls
    assert any(c.startswith("amazon-cloudwatch-agent-ctl") and "fetch-config" in c for c in calls), calls
    # Every unit the script enables has install info ([Install]), so `systemctl enable`
    # really links it (the sandbox decides as systemd does): no enable is a silent no-op.
    box = booted.sandbox
    assert box.enabled_units() == box.enable_requests(), (box.enable_requests(), box.enabled_units())
    assert "stun-counters.service" in box.enabled_units() and "stun-metrics.timer" in box.enabled_units()
    assert "stun-metrics.service" not in box.enable_requests()  # no [Install]: its timer starts it
    assert sb.NO_INSTALL_NOTICE.splitlines()[0] not in booted.first.output + booted.second.output
    drop_in = booted.sandbox.root / "lib/systemd/system/coturn.service.d"  # shipped in the package
    assert drop_in.is_dir() and list(drop_in.glob("*.conf"))


def test_enabled_units_start(booted):
    """Every service the script enables has a unit file (the systemctl stub refuses unknown
    units, as systemctl does); the oneshots among them succeed when run as at boot; the
    agent was configured with a file that exists and is JSON."""
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box = booted.sandbox
    assert "coturn.service" in booted.unit_ignored, booted.unit_ignored
    failed = {u: rc for u, rc in booted.oneshots.items() if rc != 0}
    # At boot the table's oneshot runs; the reporter's does not (it waits for its timer).
    assert "stun-counters.service" in booted.oneshots and "stun-metrics.service" not in booted.oneshots, \
        booted.oneshots
    assert not failed, {u: (rc, (box.logs / f"{u}.out").read_text()[-2000:]) for u, rc in failed.items()}
    for unit in box.enabled_units():
        if unit.endswith(".timer"):
            assert any((box.root / d / unit).is_file() for d in ("etc/systemd/system", "lib/systemd/system")), unit
            sb.read_unit(box.root, unit.removesuffix(".timer") + ".service")  # what it triggers
    ctl = [c for c in box.calls() if c.startswith("amazon-cloudwatch-agent-ctl") and " -c " in c]
    assert ctl, box.calls()
    for call in ctl:
        source = call.split(" -c ", 1)[1].split()[0]
        assert source.startswith("file:"), call
        json.loads((box.root / source.removeprefix("file:").lstrip("/")).read_text())


def test_second_run_is_idempotent(booted):
    assert booted.first.returncode == 0, _tail(booted.first)
    assert booted.second.returncode == 0, f"second run failed:\n{_tail(booted.second)}"
    first, second = booted.manifest_first, booted.manifest_second
    changed = sorted(k for k in set(first) | set(second) if first.get(k) != second.get(k))
    assert not changed, "the second run changed: " + ", ".join(changed[:40])
    assert booted.conf() == booted.conf_after_first
    refetched = [r["path"] for r in booted.mirror_requests_during_second if r["path"].endswith(".deb")]
    assert not refetched, f"the second run downloaded packages again: {refetched}"


def test_coturn_started_from_its_unit_answers_stun(booted):
    """coturn as systemd starts it (unit + drop-in); a binding from inside the namespace
    is answered with the client's own address."""
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box = booted.sandbox
    local, mapped = box.stun_binding(box.instance.private_ip, booted.settings.stun_port)
    assert mapped == local and local[0] == sb.CLIENT_IP, (local, mapped)
    # coturn's own client, from the chroot, agrees.
    p = sb.run(box.chroot("turnutils_stunclient", "-p", str(booted.settings.stun_port), "-L", sb.CLIENT_IP,
                          box.instance.private_ip), check=False, timeout=60)
    assert re.search(rf"UDP reflexive addr: {re.escape(sb.CLIENT_IP)}:\d+", p.stdout), p.stdout + p.stderr
    # Running as the unit's user, with the unit's open-file limit from the drop-in.
    pids = sb.run(["ip", "netns", "pids", box.name]).stdout.split()
    coturn = [pid for pid in pids if open(f"/proc/{pid}/comm").read().strip() == "turnserver"]
    assert len(coturn) == 1, coturn
    status = open(f"/proc/{coturn[0]}/status").read()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M)[1])
    turnserver_uid = int(sb.run(box.chroot("id", "-u", "turnserver")).stdout)
    assert uid == turnserver_uid
    unit = sb.read_unit(box.root, "coturn.service")
    if unit.get("LimitNOFILE"):
        limits = open(f"/proc/{coturn[0]}/limits").read()
        n = unit["LimitNOFILE"][-1].split(":")[-1]
        got = re.search(r"^Max open files\s+\d+\s+(\d+|unlimited)\s", limits, re.M)[1]
        host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if got != n and n.isdigit() and int(n) > host_hard:
            warnings.warn(f"LimitNOFILE={n} could not be applied: this host caps the hard limit at "
                          f"{host_hard} and denies CAP_SYS_RESOURCE; coturn ran with {got}")
        else:
            assert got == n, limits
    ignored = {u: keys for u, keys in booted.unit_ignored.items() if keys}
    assert not ignored, f"unit settings the sandbox does not apply: {ignored}"


def test_coturn_serves_the_project_client(booted):
    """stun_infra.client.turn_client against the booted server, from inside the namespace: STUN
    over UDP and TCP, TLS with the certificate from Parameter Store, and a TURN
    allocation with a credential minted from the secret in Parameter Store, relayed on
    the instance's public address (external-ip)."""
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
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
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
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
    target group; stopping it (the shutdown of a terminated instance) takes it out again."""
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box, settings = booted.sandbox, booted.settings
    groups = sb.ipv6_target_groups(settings)
    if not (groups and box.instance.ipv6):
        pytest.skip("not an autoscale instance with an IPv6 address")
    assert booted.oneshots.get("stun-nlb-targets.service") == 0, booted.oneshots

    def calls(action: str) -> list[tuple[str, list]]:
        entries = [r for r in box.requests("ssm") if r.get("action") == action]
        assert all(r["status"] == 200 and r["session_token"] for r in entries), entries  # the role's credentials
        return sorted((r["target_group"], r["targets"]) for r in entries)

    expected = sorted((g.arn, [[box.instance.ipv6, str(g.port)]]) for g in groups)
    assert calls("RegisterTargets") == expected
    assert calls("DeregisterTargets") == []
    stop_cmd = box.chroot("/usr/local/sbin/stun-nlb-targets", "deregister")  # the unit's ExecStop
    stop_cmd.insert(stop_cmd.index("chroot"), f"AWS_CA_BUNDLE={sb.SANDBOX_CA_BUNDLE}")  # as for the unit
    stop = sb.run(stop_cmd, check=False, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert calls("DeregisterTargets") == expected


def test_coturn_accepts_every_line_of_the_written_conf(booted):
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box = booted.sandbox
    box.stun_binding(box.instance.private_ip, booted.settings.stun_port)  # it is up
    log_file = box.root / "var/log/coturn/turnserver.log"
    deadline = time.monotonic() + 10
    while not log_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = log_file.read_text() + booted.coturn_log.read_text()
    bad = [line for line in text.splitlines() if any(b in line for b in COTURN_BAD_LINES)]
    assert not bad, "\n".join(bad)


def test_timer_services_run_after_traffic(booted):
    """What the enabled timers trigger (the metrics reporter, coturn's log rotation, the nftables
    guard; with TURN the secret sync, as coturn's user) runs cleanly once coturn has answered
    bindings; the kernel binding counters count them."""
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box = booted.sandbox
    timers = [u for u in box.enabled_units() if u.endswith(".timer")]
    assert sorted(timers) == ["stun-coturn-logrotate.timer", "stun-metrics.timer", "stun-nft-guard.timer",
                              *(["stun-secret-sync.timer"] if booted.settings.turn else [])], timers
    for _ in range(3):
        box.stun_binding(box.instance.private_ip, booted.settings.stun_port)
    found = _counters(box)
    print(f"nft counters: {found}")
    assert found["binding_requests"] >= 3 and found["binding_successes"] >= 3, found
    for timer in timers:
        service = timer.removesuffix(".timer") + ".service"
        # Not started at boot (no [Install]) and the timer fires OnActiveSec later, which the
        # sandbox does not: the first run publishes everything counted since the table loaded,
        # the second what came since (nothing).
        for run in range(2):
            proc, ignored = box.start_unit(service, stdout=box.logs / f"{service}.{run}.out")
            rc = proc.wait(timeout=90)
            out = (box.logs / f"{service}.{run}.out").read_text()
            assert rc == 0, f"{service} (run {run + 1}) exited {rc}:\n{out[-2000:]}"
            assert not ignored, ignored


def test_reporter_counts_land_in_cloudwatch(booted):
    """The reporter's PutMetricData calls reached CloudWatch (moto, monitoring.<region>.
    amazonaws.com over TLS), signed with the instance role's credentials from IMDSv2: in
    the stack's namespace, every counter metric per instance and for the fleet (no
    dimension), and what they sum to is exactly what the kernel counted since boot."""
    from stun_infra.instance import binding_counters, metrics

    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box = booted.sandbox
    # The reporter's service is not enabled (no [Install]): nothing runs it at boot, and its
    # timer's first run is OnActiveSec later (the sandbox fires no timers). So exactly the two
    # runs test_timer_services_run_after_traffic starts by hand.
    runs = 2
    counted = _counters(box)  # no traffic since the last run: all of it was published
    namespace, region, instance_id = metrics.namespace(booted.settings.stack), box.instance.region, box.instance.instance_id

    role_key = box.instance.imds_document(box.arch)["access_key_id"]
    puts = [r for r in box.requests("ssm") if r.get("action") == "PutMetricData"]
    assert len(puts) == runs, puts
    for r in puts:
        assert (r["status"], r["scheme"], r["host"], r["namespace"]) == (
            200, "https", f"monitoring.{region}.amazonaws.com", namespace), r
        assert r["access_key_id"] == role_key and r["session_token"], r
    credentials = [r for r in box.requests("imds") if "/iam/security-credentials/" in r["path"]]
    assert credentials and all(r["token"] and r["status"] == 200 for r in credentials), credentials

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
    print("published:", published)
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
    listing = sb.run(box.chroot("nft", "-j", "list", "counters"))
    return {c["counter"]["name"]: c["counter"]["packets"]
            for c in json.loads(listing.stdout)["nftables"] if "counter" in c}


def test_unit_sandboxing_is_emulated(booted):
    """The harness itself: a unit's ProtectSystem/ProtectHome/ReadWritePaths/
    CapabilityBoundingSet/PrivateTmp really restrict what it runs, so services passing
    here would pass under systemd's restrictions too."""
    box = booted.sandbox
    (box.root / "var/lib/sandbox-probe").mkdir(exist_ok=True)
    (box.root / "etc/systemd/system/sandbox-probe.service").write_text(
        "[Service]\nType=oneshot\nProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n"
        "ReadWritePaths=/var/lib/sandbox-probe\nCapabilityBoundingSet=CAP_NET_ADMIN\n"
        "ExecStart=/bin/sh -c 'touch /etc/probe 2>/dev/null && echo etc-writable; "
        "touch /var/lib/sandbox-probe/ok && echo rw-path-ok; ls /root >/dev/null 2>&1 && echo home-visible; "
        "ls /tmp | wc -l | sed s/^/tmp-entries-/; grep ^CapBnd /proc/self/status'\n")
    (box.root / "tmp/host-side-file").write_text("x")
    out = box.logs / "sandbox-probe.out"
    proc, ignored = box.start_unit("sandbox-probe.service", stdout=out)
    assert proc.wait(timeout=30) == 0 and not ignored, out.read_text()
    text = out.read_text()
    assert "etc-writable" not in text and "home-visible" not in text, text
    assert "rw-path-ok" in text and "tmp-entries-0" in text, text
    assert re.search(r"CapBnd:\s+0000000000001000$", text, re.M), text  # CAP_NET_ADMIN only (bit 12)
    assert not (box.root / "etc/probe").exists()


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
    secret: None when granted, else the STUN error code."""
    return box.ns_python(f"""
import asyncio, json
from stun_infra.client import credentials, turn_client as tc
server = ({box.instance.private_ip!r}, {settings.stun_port})
async def code(secret, user):
    try:
        await tc.allocate(server, *credentials.mint(secret, user=user, ttl_seconds=600))
    except tc.StunError as e:
        return e.code
    return None
async def main():
    return {{label: await code(secret, "rotation-" + label) for label, secret in {secrets!r}.items()}}
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


def test_a_rotation_reaches_the_running_coturn_through_the_installed_sync(booted):
    """Steps (a) and (c) of a rotation made in Parameter Store reach the running coturn, with
    no restart, through the sync service as installed (the sandbox fires no timers, so the
    test starts what stun-secret-sync.timer starts every SYNC_INTERVAL_SECONDS): during the
    overlap both secrets allocate, after (c) the retired one gets 401. Each run of the service
    takes far less than the pickup bound the README states."""
    from stun_infra.instance import secret_sync

    if not booted.settings.turn:
        pytest.skip("a STUN-only stack has no TURN secret")
    assert booted.first.returncode == 0 and booted.second.returncode == 0, _tail(booted.first)
    box, settings = booted.sandbox, booted.settings
    timer = sb.read_unit(box.root, "stun-secret-sync.timer", section="Timer")
    assert timer["OnUnitActiveSec"] == [f"{secret_sync.SYNC_INTERVAL_SECONDS}s"], timer
    names = secret_sync.SecretParameters.under(settings.ssm_path)
    old, new = booted.parameters[names.current], "sandbox-rotated-" + os.urandom(12).hex()
    box.stun_binding(box.instance.private_ip, settings.stun_port)  # it is up
    durations = []

    def sync(run: str) -> None:
        started = time.monotonic()
        proc, ignored = box.start_unit("stun-secret-sync.service", stdout=box.logs / f"rotation-{run}.out")
        rc = proc.wait(timeout=secret_sync.PICKUP_SECONDS)
        durations.append(time.monotonic() - started)
        assert rc == 0 and not ignored, (box.logs / f"rotation-{run}.out").read_text()

    try:
        _put_parameters(box, box.instance.region, {names.previous: old, names.current: new})  # step (a)
        sync("a")
        assert _rotation_codes(box, settings, {"old": old, "new": new}) == {"old": None, "new": None}
        _put_parameters(box, box.instance.region, {}, delete=(names.previous,))  # step (c)
        sync("c")
        assert _rotation_codes(box, settings, {"old": old, "new": new}) == {"old": 401, "new": None}
    finally:  # the module's other tests mint from the seeded secret
        _put_parameters(box, box.instance.region, {names.current: old})
        sync("restore")
    assert max(durations) < secret_sync.PICKUP_SECONDS - 2 * secret_sync.SYNC_INTERVAL_SECONDS, durations
