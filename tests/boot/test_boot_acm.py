"""Static mode with a Route 53 zone, booted for real: the instance exports the stack's ACM
certificate with its role (moto's ACM stands in, behind the regional endpoint's name),
coturn serves it on 443, nftables redirects 5349 to it, and the daily sync finds it
unchanged. No TLS parameter is read: the key exists only in ACM and on the instance.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest

import boot_sandbox as sb

pytestmark = pytest.mark.boot

ZONE = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}


@pytest.fixture(scope="module")
def acm_booted(rootfs_cache, tmp_path_factory) -> Iterator[dict]:
    from stun_infra.cloud.offline import stack_settings
    from stun_infra.instance.metrics import log_group_name
    from stun_infra.instance.boot_inputs import ParameterNames
    from tests.support.signing import TestKey

    settings = stack_settings("dev", {"instanceType": "t3.small", **ZONE})
    assert settings.tls.acm_export and settings.tls.ports == (443, 5349)
    instance = sb.Instance.of(settings)
    names = ParameterNames.under(settings.ssm_path, settings.turn, tls=False)
    parameters = {names.turn_secret: "sandbox-turn-secret-" + os.urandom(12).hex()}
    workdir = tmp_path_factory.mktemp("boot-acm")
    signer = TestKey(workdir / "signer")
    acm_host = f"acm.{settings.region}.amazonaws.com"
    with sb.Sandbox(rootfs_cache(sb.DEBIAN_ARCH[settings.architecture]), workdir, instance=instance,
                    parameters=parameters, signer=signer, extra_hosts={acm_host: sb.AWS_API_IP},
                    log_group=log_group_name(settings.project, settings.stack)) as box:
        issued = box.ns_python(_moto_acm(settings.region, "request_certificate(DomainName='turn.example.com', "
                                         "ValidationMethod='DNS', Options={'Export': 'ENABLED'})"))
        arn = issued["CertificateArn"]
        _, boot = sb.sandbox_boot_inputs(settings, instance, signer, parameters=names.at(1, None, None),
                                         certificate_arn=arn)
        user_data = box.user_data(settings, boot)
        first = box.boot(user_data)
        second = box.reboot() if first.status == "done" else first
        exported = box.ns_python(_moto_acm(settings.region, f"get_certificate(CertificateArn={arn!r})"))
        yield {"box": box, "settings": settings, "arn": arn, "first": first, "second": second,
               "exported": exported, "user_data": user_data}


def _moto_acm(region: str, call: str) -> str:
    """Python for ns_python: one ACM call on moto's plain listener, its answer as JSON."""
    return ("import boto3, json\n"
            f"c = boto3.client('acm', region_name={region!r}, endpoint_url='http://127.0.0.1:{sb.MOTO_PLAIN_PORT}', "
            "aws_access_key_id='sandbox', aws_secret_access_key='sandbox')\n"
            f"print(json.dumps(c.{call}, default=str))\n")


def _tail(run: sb.Boot) -> str:
    return f"{run.status} {run.errors} {run.failed_units}\n" + "\n".join(run.output.splitlines()[-60:])


def test_the_instance_boots_and_reboots_with_no_failure(acm_booted):
    for boot in (acm_booted["first"], acm_booted["second"]):
        assert (boot.status, boot.system, boot.failed_units) == ("done", "running", []), _tail(boot)


def test_coturn_gets_acms_certificate_and_chain_through_the_role(acm_booted):
    root = acm_booted["box"].root
    served = (root / "etc/coturn/tls/cert.pem").read_text()
    assert served.startswith(acm_booted["exported"]["Certificate"].strip())
    assert acm_booted["exported"]["CertificateChain"].strip() in served
    exports = [r for r in acm_booted["box"].requests("ssm") if r.get("target") == "CertificateManager.ExportCertificate"]
    assert len(exports) == 2 and all(r["host"] == f"acm.{acm_booted['settings'].region}.amazonaws.com" for r in exports)


def test_configure_at_the_reboot_finds_the_certificate_unchanged(acm_booted):
    assert "stun-tls-sync: certificate unchanged" in acm_booted["box"].journal("stun-infra-configure.service")


def test_no_tls_parameter_is_read_and_no_key_is_in_user_data(acm_booted):
    reads = [r for r in acm_booted["box"].requests("ssm")
             if r.get("target") in ("AmazonSSM.GetParameter", "AmazonSSM.GetParameters")]  # the TURN secret sync
    assert reads and not [r for r in reads if "tls" in json.dumps(r)]
    assert "PRIVATE KEY" not in acm_booted["user_data"]


def test_the_key_is_coturns_alone_and_the_passphrase_is_gone(acm_booted):
    root = acm_booted["box"].root
    key = root / "etc/coturn/tls/key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert "ENCRYPTED" not in key.read_text() and "PRIVATE KEY" in key.read_text()
    assert not list((root / "tmp").glob("tmp.*/passphrase"))


def test_the_renewal_timer_and_the_port_redirect_are_enabled(acm_booted):
    box = acm_booted["box"]
    for unit in ("stun-tls-sync.timer", "stun-tls-ports.service"):
        assert box.systemctl("is-enabled", unit).stdout.strip() == "enabled", unit
    assert box.unit_property("stun-tls-ports.service", "Result") == "success"
    ruleset = (acm_booted["box"].root / "etc/stun-infra/tls-ports.nft").read_text()
    assert "tcp dport { 5349 } redirect to :443" in ruleset


def served_certificate(box: sb.Sandbox) -> str:
    """The certificate coturn presents on 443 to a new TLS client."""
    return box.ns_python(
        "import json, ssl\n"
        "from stun_infra.client import turn_client as tc\n"
        f"h = tc.tls_handshake(({box.instance.private_ip!r}, 443), timeout=5, server_name='turn.example.com')\n"
        "print(json.dumps(ssl.DER_cert_to_PEM_cert(h.certificate)))\n").strip()


def test_coturn_serves_the_exported_certificate_on_443(acm_booted):
    box = acm_booted["box"]
    box.stun_binding(box.instance.private_ip, acm_booted["settings"].stun_port)  # it is up
    assert served_certificate(box) == acm_booted["exported"]["Certificate"].strip()


def test_the_sync_keeps_its_decrypted_key_in_a_private_tmp_that_dies_with_it(acm_booted):
    """The script's own clean-up (a trap) does not run when the unit is killed (SIGKILL at its
    start timeout): the key sits in a temporary folder systemd removes with the unit."""
    assert acm_booted["box"].unit_property("stun-tls-sync.service", "PrivateTmp") == "yes"


RELOADED = "Reloading TLS certificates and keys"  # coturn 4.6.1's line on SIGUSR2
WAIT = 60.0  # bound on each wait below


def reloads(box: sb.Sandbox) -> int:
    """How often the running coturn reloaded its certificate (its own log)."""
    return (box.root / "var/log/coturn/turnserver.log").read_text(errors="replace").count(RELOADED)


def daily_sync(box: sb.Sandbox) -> str:
    """What the timer's run of the sync does, started now: what it said."""
    before = len(box.journal("stun-tls-sync.service"))
    box.systemctl("start", "stun-tls-sync.service", timeout=180, check=False)
    said = box.journal("stun-tls-sync.service")[before:]
    assert box.unit_property("stun-tls-sync.service", "Result") == "success", said
    return said


def test_an_unchanged_certificate_is_left_alone_and_coturn_not_reloaded(acm_booted):
    box = acm_booted["box"]
    pid, reloaded, served = box.unit_property("coturn.service", "MainPID"), reloads(box), served_certificate(box)
    stamp = (box.root / "etc/coturn/tls/cert.pem").stat().st_mtime_ns
    said = daily_sync(box)
    assert "stun-tls-sync: certificate unchanged" in said and "installed" not in said, said
    assert (box.root / "etc/coturn/tls/cert.pem").stat().st_mtime_ns == stamp
    assert (box.unit_property("coturn.service", "MainPID"), reloads(box), served_certificate(box)) == (
        pid, reloaded, served)


def test_a_renewed_certificate_is_installed_and_the_running_coturn_reloads_it(acm_booted):
    """ACM renewed the certificate (same ARN, new key): the next sync installs it and asks the
    running coturn to reload (SIGUSR2): the same process serves the new certificate."""
    box, arn = acm_booted["box"], acm_booted["arn"]
    pid, reloaded = box.unit_property("coturn.service", "MainPID"), reloads(box)
    renewed = box.ns_python(
        "import json, urllib.request\n"
        f"r = urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:{sb.MOTO_PLAIN_PORT}/sandbox/acm-renewal', "
        f"data=json.dumps({{'CertificateArn': {arn!r}}}).encode(), method='POST'), timeout=30)\n"
        "print(r.read().decode())\n")
    exported = box.ns_python(_moto_acm(acm_booted["settings"].region, f"get_certificate(CertificateArn={arn!r})"))
    assert exported["Certificate"] != acm_booted["exported"]["Certificate"]
    said = daily_sync(box)
    installed = re.search(r"stun-tls-sync: installed serial=([0-9A-F]+)", said)
    assert installed and int(installed[1], 16) == int(renewed["Serial"]), said
    sb.wait_until("coturn reloads and serves the renewed certificate", lambda: reloads(box) > reloaded
                  and served_certificate(box) == exported["Certificate"].strip(), timeout=WAIT, interval=0.5)
    assert reloads(box) == reloaded + 1
    assert box.unit_property("coturn.service", "MainPID") == pid  # reloaded, not restarted
