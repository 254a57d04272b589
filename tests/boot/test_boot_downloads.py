"""Bad downloads on a booting instance: each stops the boot with one line naming the package
and the reason, in the console output and in the stack's CloudWatch Logs group, and coturn
stays disabled (nothing answers the health check, so autoscale replaces the instance). A
download that fails for a while is retried and the boot completes.

One sandboxed x86 instance of the dev stack (this machine's architecture: its apt stage takes
seconds, not minutes) is launched once per case: the same disk, powered on with a new instance
id in IMDS, so cloud-init runs the user data again, as for a new instance. Before each, with
the machine off, the agents are purged and the downloads stand-in serves the signed packages
again, then the case spoils one thing.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading

import pytest

import boot_sandbox as sb
from stun_infra.instance import downloads
from stun_infra.instance import metrics
from stun_infra.instance.package import BOOT_FAILED_UNIT, BOOT_STOPPED_STATUS
from stun_infra.instance.services import CONFIGURE_UNIT

pytestmark = pytest.mark.boot

WAIT = 300.0  # bound on each wait below: a configure run, a minute's pause (RestartSec=), another run

# Small enough that a download which never completes gives up within the test's patience;
# the production value (downloads.DOWNLOAD_SECONDS) is checked in tests/instance.
DOWNLOAD_SECONDS = 8
STOPPED = re.compile(r"^stun-infra: BOOT STOPPED: ")


class Case:
    """The sandbox and what one launch did."""

    def __init__(self, box: sb.Sandbox, user_data: str, settings: object):
        self.box, self.user_data, self.settings = box, user_data, settings
        self.run: sb.Boot | None = None
        self.launches = 0
        self.coturn: dict[str, str] = {}

    def reset(self) -> None:
        """Agents not installed, every download served and signed as published."""
        if self.box.leader() is not None:
            self.box.power_off()
        for pkg in ("amazon-cloudwatch-agent", "amazon-ssm-agent"):
            sb.run(self.box.chroot("dpkg", "--purge", pkg), check=False)
        # A new instance's disk has no unit a failed boot of the last one enabled (configure's,
        # which runs a failed configure again): only the user data configures it.
        sb.run(["systemctl", f"--root={self.box.root}", "disable", "--quiet", CONFIGURE_UNIT], check=False)
        self.box.publish_agents()

    def boot(self) -> sb.Boot:
        """A launch of a new instance from this disk: cloud-init runs the user data."""
        if self.box.leader() is not None:
            self.box.power_off()
        self.launches += 1
        self.box.instance.instance_id = f"i-0123456789abcd{self.launches:03x}"
        self.run = self.box.boot(self.user_data, timeout=600)
        self.coturn = {"enabled": self.box.systemctl("is-enabled", "coturn.service", check=False).stdout.strip(),
                       "started": self.box.unit_property("coturn.service", "ExecMainStartTimestampMonotonic")}
        return self.run

    def stopped_line(self) -> str:
        lines = [text for text in self.run.output.splitlines() if STOPPED.match(text)]
        assert len(lines) == 1, f"expected one BOOT STOPPED line:\n{self.run.output[-3000:]}"
        return lines[0]

    def boot_failed_sums(self) -> list[float]:
        """What CloudWatch (moto) holds of this instance's BootFailed metric: [this instance's
        sum, the fleet series' sum]."""
        from stun_infra.instance import metrics

        return self.box.ns_python(f"""
import datetime, json, boto3
cw = boto3.client("cloudwatch", region_name={self.box.instance.region!r},
                  endpoint_url="http://127.0.0.1:{sb.MOTO_PLAIN_PORT}", aws_access_key_id="reader",
                  aws_secret_access_key="reader")
now = datetime.datetime.now(datetime.timezone.utc)
def total(dimensions):
    return sum(p["Sum"] for p in cw.get_metric_statistics(
        Namespace={metrics.namespace(self.settings.stack)!r}, MetricName={metrics.BOOT_FAILED!r},
        Dimensions=dimensions, StartTime=now - datetime.timedelta(hours=1), EndTime=now + datetime.timedelta(hours=1),
        Period=60, Statistics=["Sum"])["Datapoints"])
print(json.dumps([total([{{"Name": {metrics.INSTANCE_DIMENSION!r}, "Value": {self.box.instance.instance_id!r}}}]),
                  total([])]))
""")

    def cloudwatch_lines(self) -> list[str]:
        return self.box.ns_python(f"""
import json, boto3
logs = boto3.client("logs", region_name={self.box.instance.region!r}, endpoint_url="http://127.0.0.1:{sb.MOTO_PLAIN_PORT}",
                    aws_access_key_id="reader", aws_secret_access_key="reader")
try:
    events = logs.get_log_events(logGroupName={self.box.log_group!r},
                                 logStreamName={self.box.instance.instance_id + "/boot"!r})["events"]
except logs.exceptions.ResourceNotFoundException:
    events = []
print(json.dumps([e["message"] for e in events]))
""")



@pytest.fixture(scope="module")
def case(rootfs_cache, tmp_path_factory):
    from stun_infra.cloud.offline import stack_settings

    settings = stack_settings("dev", {"instanceType": "t3.small"})
    with sb.seeded_sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), tmp_path_factory.mktemp("boot-downloads"),
                           settings, sb.Instance.of(settings), download_seconds=DOWNLOAD_SECONDS) as (box, boot, _):
        yield Case(box, box.user_data(settings, boot, fetch_seconds=DOWNLOAD_SECONDS), settings)


def assert_boot_stopped(case: Case, package: str, reason: str) -> None:
    """One line naming the package and the reason, in the console output, the boot log and
    CloudWatch Logs; no other failure line; cloud-init reports the script's failure; coturn
    disabled and never started."""
    r = case.run
    assert (r.status, r.returncode) == ("error", BOOT_STOPPED_STATUS), r.output[-3000:]  # not retried: reported
    assert any("scripts_user" in e or "scripts-user" in e for e in r.errors), r.errors
    line = case.stopped_line()
    assert line.startswith(f"stun-infra: BOOT STOPPED: {package}: {reason}"), line
    assert line.endswith("(coturn stays disabled)"), line
    assert "FAILED at line" not in r.output and "boot complete" not in r.output
    assert line in (case.box.root / "var/log/stun-infra-boot.log").read_text()
    assert line in case.cloudwatch_lines()
    # The package's own postinst presets it (enabled); the script disables it, and nothing
    # starts it.
    assert case.coturn == {"enabled": "disabled", "started": "0"}, case.coturn
    assert "stun-infra" not in (case.box.root / "etc/turnserver.conf").read_text()  # Debian's stock file
    assert_boot_failed_published(case)


def assert_boot_failed_published(case: Case) -> None:
    """configure's hand-over started the give-up reporter (not configure's unit, which would
    only stop the same way again): systemd ran it, and BootFailed for this instance reached
    CloudWatch, signed with the role's credentials."""
    box = case.box
    said = f"stun-boot-failed: {metrics.BOOT_FAILED} published for {box.instance.instance_id}"
    sb.wait_until("the give-up reporter ran", lambda: said in box.journal(BOOT_FAILED_UNIT), timeout=WAIT)
    assert box.unit_property(BOOT_FAILED_UNIT, "Result") == "success"
    assert box.unit_property(CONFIGURE_UNIT, "ExecMainStartTimestampMonotonic") == "0"  # not run again
    puts = [r for r in box.requests("ssm") if r.get("action") == "PutMetricData"
            and r["namespace"] == metrics.namespace(case.settings.stack)]
    role_key = box.instance.imds_document(box.arch)["access_key_id"]
    assert puts and puts[-1]["status"] == 200 and puts[-1]["access_key_id"] == role_key, puts
    instance_sum, _fleet = case.boot_failed_sums()
    assert instance_sum == 1.0


def assert_package_refused(case: Case, reason: str) -> None:
    """One line naming the instance package's digest and the reason; nothing installed,
    nothing configured, coturn not even there."""
    r = case.run
    assert (r.status, r.returncode) == ("error", 1), r.output[-3000:]
    line = case.stopped_line()
    assert line.startswith(f"stun-infra: BOOT STOPPED: {case.box.package.sha256}: {reason}"), line
    assert "stun-infra: stage" not in r.output and "boot complete" not in r.output
    for pkg in ("stun-infra-instance", "coturn"):
        assert case.box.exec("dpkg-query", "-W", pkg, check=False).returncode != 0, pkg
    assert case.coturn["started"] in ("", "0"), case.coturn


def test_an_instance_package_whose_digest_does_not_match_stops_the_boot_before_anything_is_installed(case):
    published = case.box.www / case.box.package.key
    good = published.read_bytes()
    try:
        published.write_bytes(good[:-1] + bytes([good[-1] ^ 0x01]))
        case.boot()
        tampered = hashlib.sha256(published.read_bytes()).hexdigest()
        assert_package_refused(case, f"SHA-256 is {tampered}")
    finally:
        published.write_bytes(good)
    # Served: the GET carried a Signature Version 4 of the role's credentials that botocore's
    # own signer computes the same (the stand-in answers 403 otherwise, as S3 does).
    gets = [r for r in case.box.requests("downloads") if r["host"] == case.box.bucket_host]
    assert gets and all(r["status"] == 200 and r["signature_problem"] == "" and
                        r["access_key"] == "ASIASANDBOXINSTANCE1" for r in gets), gets


def test_a_missing_instance_package_stops_the_boot_once_its_time_is_spent(case):
    published = case.box.www / case.box.package.key
    good = published.read_bytes()
    published.unlink()
    try:
        case.boot()
        assert_package_refused(case, "download: HTTP Error 404")
    finally:
        published.write_bytes(good)
    gets = [r for r in case.box.requests("downloads") if r["host"] == case.box.bucket_host]
    assert [r["status"] for r in gets][-2:] == [404, 404] and gets[-1]["signature_problem"] == ""  # retried


def test_a_tampered_package_stops_the_boot(case):
    case.reset()
    deb = case.box.agent_path(downloads.CLOUDWATCH_AGENT)
    data = bytearray(deb.read_bytes())
    data[len(data) // 2] ^= 0x01
    deb.write_bytes(bytes(data))
    case.boot()
    assert_boot_stopped(case, "amazon-cloudwatch-agent",
                        f"signature does not verify with key {case.box.signer.fingerprint} (BADSIG)")


def test_a_missing_package_stops_the_boot(case):
    case.reset()
    deb = case.box.agent_path(downloads.SSM_AGENT)
    deb.unlink()
    case.boot()
    url = downloads.SSM_AGENT.url.format(region=case.box.instance.region, arch=case.box.arch)
    assert_boot_stopped(case, "amazon-ssm-agent", f"download failed: HTTP 404 from {url} (")
    gets = [r for r in case.box.requests("downloads") if r["path"].endswith("/amazon-ssm-agent.deb")]
    assert [r["status"] for r in gets][-1:] == [404] and len([r for r in gets if r["status"] == 404]) == 1


def test_a_truncated_download_stops_the_boot_once_its_time_is_spent(case):
    case.reset()
    path = "/" + str(case.box.agent_path(downloads.CLOUDWATCH_AGENT).relative_to(case.box.www))
    case.box.faults_file.write_text(json.dumps({path: {"kind": "truncate"}}))
    case.boot()
    assert_boot_stopped(case, "amazon-cloudwatch-agent", "download failed: curl: (18) ")
    assert f"attempts in {DOWNLOAD_SECONDS} s)" in case.stopped_line()
    truncated = [r for r in case.box.requests("downloads") if r["path"] == path and r.get("fault") == "truncate"]
    assert len(truncated) >= 2, truncated  # retried before giving up


def test_a_package_for_the_wrong_architecture_stops_the_boot(case):
    case.reset()
    other = "arm64" if case.box.arch == "amd64" else "amd64"
    case.box.publish_agents(arch=other)
    case.boot()
    assert_boot_stopped(case, "amazon-cloudwatch-agent", f"package is for {other}, this instance is {case.box.arch}")


def test_a_package_and_key_swapped_together_stop_the_boot(case, tmp_path):
    """Whoever can replace the package and the key file beside it still lacks the pinned key."""
    from tests.support.signing import TestKey

    case.reset()
    intruder = TestKey(tmp_path / "intruder", name="not aws")
    deb = case.box.agent_path(downloads.CLOUDWATCH_AGENT)
    intruder.sign(deb)
    case.box.agent_path(downloads.CLOUDWATCH_AGENT, downloads.CLOUDWATCH_AGENT.key.url).write_text(intruder.armored)
    case.boot()
    assert_boot_stopped(case, "amazon-cloudwatch-agent",
                        f"signed by key {intruder.fingerprint}, not by the pinned key {case.box.signer.fingerprint}")


def test_a_stopped_boot_leaves_the_health_check_port_closed(case):
    """What the load balancer sees: with the services the script enabled started by systemd,
    nothing accepts a TCP connection on the STUN port, so the target is unhealthy and
    the group replaces the instance."""
    case.reset()
    case.box.signer.sign(case.box.agent_path(downloads.SSM_AGENT), case.box.agent_path(
        downloads.CLOUDWATCH_AGENT).with_name("amazon-cloudwatch-agent.deb.sig"))  # a signature of another file
    case.boot()
    assert_boot_stopped(case, "amazon-cloudwatch-agent", "signature does not verify with key")
    answer = case.box.ns_python(f"""
import json, socket
s = socket.socket()
s.settimeout(5)
try:
    s.connect(({case.box.instance.private_ip!r}, {case.settings.stun_port}))
    print(json.dumps("accepted"))
except OSError as e:
    print(json.dumps(type(e).__name__))
""")
    assert answer == "ConnectionRefusedError", answer


def test_a_download_that_fails_for_a_while_is_retried_and_the_boot_completes(case):
    case.reset()
    path = "/" + str(case.box.agent_path(downloads.SSM_AGENT).relative_to(case.box.www))
    case.box.faults_file.write_text(json.dumps({path: {"kind": "unavailable", "times": 2}}))
    r = case.boot()
    assert (r.status, r.returncode) == ("done", 0) and "stun-infra: boot complete" in r.output, r.output[-3000:]
    statuses = [x["status"] for x in case.box.requests("downloads") if x["path"] == path]
    assert statuses[-3:] == [503, 503, 200], statuses
    assert len(re.findall(r"HTTP 503 from .*amazon-ssm-agent\.deb; retrying in \d+ s", r.output)) == 2
    assert not [text for text in r.output.splitlines() if STOPPED.match(text)]
    for pkg in ("amazon-cloudwatch-agent", "amazon-ssm-agent"):
        assert f"stun-infra: {pkg}: signature verified (key {case.box.signer.fingerprint}), {case.box.arch} package" \
            in r.output


def test_a_configure_that_fails_for_a_while_is_run_again_by_systemd_until_it_succeeds(case):
    """The TURN secret is not in Parameter Store yet: the user data's configure fails and hands
    over to configure's unit, whose first run fails too; once the unit waits to run again
    (RestartSec=) the secret is put, and systemd's next run configures and coturn serves."""
    from stun_infra.instance.boot_inputs import ParameterNames
    from test_boot_script import _put_parameters

    case.reset()
    box, region = case.box, case.box.instance.region
    name = ParameterNames.under(case.settings.ssm_path, case.settings.turn).turn_secret
    _put_parameters(box, region, {}, delete=(name,))
    seeded = threading.Event()

    def seed_once_configure_failed_under_its_unit() -> None:
        def waiting() -> bool:
            try:
                return box.unit_property(CONFIGURE_UNIT, "SubState") == "auto-restart"
            except (RuntimeError, subprocess.SubprocessError):  # the machine not up yet
                return False
        try:
            sb.wait_until("configure's unit fails and waits to run again", waiting, timeout=WAIT)
        finally:
            _put_parameters(box, region, {name: box.parameters[name]})
            seeded.set()

    seeder = threading.Thread(target=seed_once_configure_failed_under_its_unit, daemon=True)
    seeder.start()
    r = case.boot()
    assert seeded.wait(WAIT)
    sb.wait_until("configure's unit succeeds", lambda: box.unit_property(CONFIGURE_UNIT, "Result") == "success"
               and box.unit_property(CONFIGURE_UNIT, "ActiveState") == "active", timeout=WAIT)
    assert (r.status, r.returncode) == ("error", 1), r.output[-3000:]  # the user data's run
    assert f"stun-infra: configure failed (exit 1): {CONFIGURE_UNIT} runs it again" in r.output, r.output[-3000:]
    assert int(box.unit_property(CONFIGURE_UNIT, "NRestarts")) >= 1
    assert box.systemctl("is-enabled", CONFIGURE_UNIT).stdout.strip() == "enabled"  # and at every start
    assert box.unit_property("coturn.service", "ActiveState") == "active"
    assert box.stun_binding(box.instance.private_ip, case.settings.stun_port)[1][0] == sb.CLIENT_IP
    assert box.unit_property(BOOT_FAILED_UNIT, "ExecMainStartTimestampMonotonic") == "0"
