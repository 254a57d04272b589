"""An instance weeks into service, on the booted machine: what Debian's own machinery and time do
to it. One static TURN instance (x86_64, TLS on 443 with 5349 redirected) is launched by its
user data on a root that has what a Debian 12 AMI has (unattended-upgrades enabled, its timers);
then, with systemd as PID 1:

- Debian's security archive (the mirror stand-in) publishes a newer coturn and a newer logrotate,
  and Debian's own apt-daily / apt-daily-upgrade services run unattended-upgrade: logrotate is
  upgraded, coturn is not and keeps serving from the same process;
- coturn killed with SIGKILL is started again by systemd;
- the metrics timer is a calendar timer at second 30 of every minute;
- Debian's nftables.service (`flush ruleset`, then /etc/nftables.conf) is started: every table
  of ours comes back and STUN and TLS still answer;
- the reporter publishes the days left on the certificate coturn serves, not on the file: a
  file replaced on disk counts only once coturn reloads it.
"""

from __future__ import annotations

import datetime
import functools
import re
import time

import pytest

import archive_update
import boot_sandbox as sb

pytestmark = pytest.mark.boot

WAIT = 60.0  # bound on every wait below
TLS_PORTS = ["443", "5349"]  # coturn on 443 (a privileged port), 5349 redirected to it by nftables
wait_until = functools.partial(sb.wait_until, timeout=WAIT)
UPGRADE_TIMEOUT = 600  # apt-daily-upgrade.service: unattended-upgrade unpacking one package
FAILED_CONFIGURE_WAIT = 300  # configure without the metadata service: its own waits (10 x 3 s) spent, and more


@pytest.fixture(scope="module")
def booted(rootfs_cache, tmp_path_factory):
    from stun_infra.cloud.offline import stack_settings

    settings = stack_settings("dev", {"instanceType": "t3.small", "tlsPorts": f'["{TLS_PORTS[0]}", "{TLS_PORTS[1]}"]'})
    assert not settings.autoscale and settings.turn and settings.tls.coturn_port == int(TLS_PORTS[0])
    instance = sb.Instance.of(settings)
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("in-service"),
                           settings, instance) as (box, boot, secret):
        launch = box.boot(box.user_data(settings, boot))
        assert launch.clean, launch.summary()
        box.stun_binding(instance.private_ip, settings.stun_port)  # coturn answers
        yield box, settings


def installed(box: sb.Sandbox, package: str) -> str:
    return box.exec("dpkg-query", "-W", "-f", "${Version}", package).stdout


def tls_version(box: sb.Sandbox, port: int) -> str:
    """The TLS version a handshake from the namespace's client to the instance's `port` got."""
    return box.ns_python(f"""
import json
from stun_infra.client import turn_client as tc
print(json.dumps(tc.tls_handshake(({box.instance.private_ip!r}, {port}), context=tc.tls_context()).version))
""")


def test_the_machine_has_debians_automatic_upgrades_as_the_ami_does(booted):
    """What the upgrade test stands on: unattended-upgrades installed and enabled by Debian's
    20auto-upgrades, its timers enabled, and our blacklist beside Debian's configuration."""
    box, _ = booted
    config = box.exec("apt-config", "dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config, config
    assert 'APT::Periodic::Update-Package-Lists "1";' in config, config
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert box.systemctl("is-enabled", timer, check=False).stdout.strip() == "enabled", timer
        assert box.unit_property(timer, "ActiveState") == "active", timer
    assert re.search(r'^Unattended-Upgrade::Package-Blacklist:: "coturn\$";$', config, re.M), config


def test_unattended_upgrades_take_a_security_update_but_never_coturn(booted):
    """Debian's security archive publishes a newer coturn and a newer logrotate; Debian's own
    apt-daily.service (the lists) and apt-daily-upgrade.service (unattended-upgrade) run:
    logrotate is upgraded, coturn keeps its version and its process, and still answers."""
    box, settings = booted
    debs = box.cache.debs
    old_coturn, old_logrotate = installed(box, "coturn"), installed(box, "logrotate")
    work = box.workdir / "security-update"
    work.mkdir()
    newer = {"coturn": old_coturn + "+deb12u1", "logrotate": old_logrotate + "+deb12u1"}
    rebuilt = [archive_update.rebuilt(next(debs.glob(f"{name}_*_{box.arch}.deb")), version, work)
               for name, version in newer.items()]
    archive_update.publish(box.standins.mirror_updates, rebuilt, box.arch, box.signer)
    (box.root / "etc/apt/sources.list.d/debian-security.list").write_text(archive_update.SECURITY_SOURCE)
    (box.root / "etc/apt/trusted.gpg.d/stun-infra-sandbox-archive.asc").write_text(box.signer.armored)
    pid = box.unit_property("coturn.service", "MainPID")

    box.systemctl("start", "apt-daily.service", timeout=UPGRADE_TIMEOUT)
    assert box.unit_property("apt-daily.service", "Result") == "success", box.journal("apt-daily.service")[-3000:]
    policy = box.exec("apt-cache", "policy", "coturn").stdout
    assert f"Candidate: {newer['coturn']}" in policy, policy  # apt sees the update
    box.systemctl("start", "apt-daily-upgrade.service", timeout=UPGRADE_TIMEOUT)
    log = (box.root / "var/log/unattended-upgrades/unattended-upgrades.log").read_text(errors="replace")
    print(log[-3000:])
    assert box.unit_property("apt-daily-upgrade.service", "Result") == "success", \
        box.journal("apt-daily-upgrade.service")[-3000:]

    assert installed(box, "logrotate") == newer["logrotate"], log[-3000:]
    assert installed(box, "coturn") == old_coturn, log[-3000:]
    assert (box.unit_property("coturn.service", "MainPID"), box.unit_property("coturn.service", "NRestarts")) == \
        (pid, "0")
    local, mapped = box.stun_binding(box.instance.private_ip, settings.stun_port)
    assert mapped == local


def test_a_killed_coturn_is_started_again_by_systemd(booted):
    box, settings = booted
    pid, restarts = box.unit_property("coturn.service", "MainPID"), int(box.unit_property("coturn.service", "NRestarts"))
    box.exec("kill", "-KILL", pid)
    wait_until("coturn restarted", lambda: int(box.unit_property("coturn.service", "NRestarts")) == restarts + 1
               and box.unit_property("coturn.service", "ActiveState") == "active")
    assert box.unit_property("coturn.service", "MainPID") not in ("0", pid)
    local, mapped = box.stun_binding(box.instance.private_ip, settings.stun_port)
    assert mapped == local


def timer_time(stamp: str) -> datetime.datetime:
    """A time as `systemctl show` prints it (the machine's zone is UTC)."""
    return datetime.datetime.strptime(stamp.rsplit(" ", 1)[0], "%a %Y-%m-%d %H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


def test_the_metrics_timer_fires_at_second_30_of_every_minute(booted):
    """systemd's own reading of the timer: a calendar expression (not a delay counted from the
    last run, which drifts), its next elapse at second 30 within the coming minute; once it has
    fired, it fired at second 30 (AccuracySec=1s) and its next elapse is the minute after."""
    from stun_infra.instance import binding_counters

    box, _ = booted
    timer = "stun-metrics.timer"
    calendar = box.unit_property(timer, "TimersCalendar")
    assert f"OnCalendar={binding_counters.REPORT_CALENDAR} ;" in calendar, calendar
    assert box.unit_property(timer, "TimersMonotonic") == "", "a delay counted from the last run"
    now = datetime.datetime.now(datetime.timezone.utc)
    nxt = timer_time(box.unit_property(timer, "NextElapseUSecRealtime"))
    assert nxt.second == 30 and datetime.timedelta(0) < nxt - now <= datetime.timedelta(seconds=61), (nxt, now)

    def last_and_next() -> dict[str, str] | None:
        """Read together, no trigger between them; none while the service runs (systemd sets
        the next elapse once it has ended)."""
        shown = dict(line.split("=", 1) for line in box.systemctl(
            "show", "-p", "LastTriggerUSec", "-p", "NextElapseUSecRealtime", timer).stdout.splitlines())
        return shown if all(v not in ("", "n/a") for v in shown.values()) else None

    shown = wait_until("the timer fired", last_and_next, timeout=WAIT + 5)
    last, nxt = timer_time(shown["LastTriggerUSec"]), timer_time(shown["NextElapseUSecRealtime"])
    # fired at second 30, or within AccuracySec (1 s) after it on a busy machine
    assert last.second in (30, 31) and nxt - last.replace(second=30) == datetime.timedelta(minutes=1), shown


def our_tables(box: sb.Sandbox) -> dict[str, str]:
    """Each stun-infra table, as `nft` lists it without state (counter values, set elements)."""
    names = [line.split()[2] for line in box.exec("nft", "list", "tables").stdout.splitlines()
             if line.startswith("table inet stun_infra")]
    return {name: box.exec("nft", "-s", "-t", "list", "table", "inet", name).stdout for name in names}


def test_debians_nftables_service_flush_gives_back_every_table_of_ours(booted):
    """Debian's nftables.service runs /etc/nftables.conf, which starts with `flush ruleset`: after
    it, every table of ours is back as it was (the TLS redirect, the drain's tracking, the
    counters with the flood limits), and STUN and TLS answer (the redirect acts on what arrives from
    outside the machine, which this namespace has not: it is compared as listed)."""
    from stun_infra.instance import binding_counters, drain, tls_ports

    box, settings = booted
    before = our_tables(box)
    assert set(before) == {binding_counters.TABLE, drain.TABLE, tls_ports.TABLE}, before
    assert box.exec("head", "-5", "/etc/nftables.conf").stdout.count("flush ruleset") == 1
    box.systemctl("restart", "nftables.service", timeout=120)
    assert box.unit_property("nftables.service", "Result") == "success"
    assert "table inet filter" in box.exec("nft", "list", "tables").stdout  # Debian's ruleset was loaded
    wait_until("our tables back", lambda: our_tables(box) == before)
    local, mapped = box.stun_binding(box.instance.private_ip, settings.stun_port)
    assert mapped == local
    assert tls_version(box, settings.tls.coturn_port) == "TLSv1.2"


def published_certificate_days(box: sb.Sandbox) -> float:
    """Run the reporter once as its timer does; the days left it published, from its journal line."""
    from stun_infra.instance import metrics

    box.systemctl("start", "stun-metrics.service", timeout=120)
    assert box.unit_property("stun-metrics.service", "Result") == "success"
    lines = [line for line in box.journal("stun-metrics.service").splitlines() if line.startswith("stun-metrics: ")]
    return float(re.search(rf"\b{metrics.CERTIFICATE_DAYS_LEFT}=([-\d.]+)", lines[-1])[1])


def test_the_reporter_publishes_the_days_left_on_the_certificate_coturn_serves(booted):
    """The seeded certificate (about 2 days left) is what coturn serves. A certificate with 90
    days is written over its file without a reload: the reporter still publishes about 2 (what
    clients get); once coturn reloads (SIGUSR2, as the TLS sync does), about 90."""
    from stun_infra.common import certificates
    from stun_infra.instance.coturn import INSTANCE_PATHS

    box, settings = booted
    assert 1.5 < published_certificate_days(box) < 2.5
    key = certificates.new_key()
    cert = certificates.make_certificate([settings.tls_domain], key, valid_from=datetime.timedelta(hours=-1),
                                         valid_for=datetime.timedelta(days=90, hours=1))
    for path, text in ((INSTANCE_PATHS.cert, certificates.certificate_pem(cert)),
                       (INSTANCE_PATHS.key, certificates.key_pem(key))):
        (box.root / path.lstrip("/")).write_text(text)
    assert 1.5 < published_certificate_days(box) < 2.5
    box.systemctl("kill", "-s", "SIGUSR2", "--kill-who=main", "coturn.service")
    wait_until("the renewed certificate served", lambda: 89.5 < published_certificate_days(box) < 90.5)


def test_a_configure_that_fails_is_run_again_by_systemd_and_serves(booted):
    """The metadata service stops answering and configure is started: its run fails once its own
    waits are spent; systemd runs it again after RestartSec (its Restart=), the metadata service
    answers by then, the run succeeds, coturn serves, and nothing reports a failed boot. Last in
    this module: configure writes the seeded certificate back."""
    from stun_infra.instance import package
    from stun_infra.instance.services import CONFIGURE_UNIT as unit

    box, settings = booted
    restarts = int(box.unit_property(unit, "NRestarts"))
    box.standins.stop("imds")
    try:
        box.systemctl("restart", "--no-block", unit)
        wait_until("configure's run failed", lambda: box.unit_property(unit, "SubState") in ("auto-restart", "failed"),
                   timeout=FAILED_CONFIGURE_WAIT)
    finally:
        box.standins.start_imds()
    assert box.unit_property(unit, "SubState") == "auto-restart", box.journal(unit)[-2000:]
    wait_until("configure run again", lambda: int(box.unit_property(unit, "NRestarts")) == restarts + 1
               and box.unit_property(unit, "ActiveState") == "active",
               timeout=package.CONFIGURE_RESTART_SECONDS + package.CONFIGURE_TIMEOUT_SECONDS)
    assert box.unit_property(unit, "Result") == "success"
    assert box.unit_property(package.BOOT_FAILED_UNIT, "ExecMainStartTimestampMonotonic") == "0"
    local, mapped = box.stun_binding(box.instance.private_ip, settings.stun_port)
    assert mapped == local
