"""TURN over TLS that browsers accept: the ACM certificate, its validation, where TLS ends,
the ports opened and the URIs handed out, in both modes, with and without a zone."""

from __future__ import annotations

import json

import pytest

from stun_infra.cloud.components.endpoint import TLS_POLICY
from stun_infra.cloud.offline import UNSEEN_SECRET
from tests.support.debs import configure_of, files_of, stored_package
from stun_infra.settings import ConfigError

from tests.conftest import DNS, inputs_of, program
from tests.support.certs import make_ca

CERT = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
LISTENER = "aws:lb/listener:Listener"
TG = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ZONE = DNS["dnsZoneId"]


@pytest.fixture(scope="module")
def autoscale_acm():
    return program(mode="autoscale", **DNS)


@pytest.fixture(scope="module")
def static_acm():
    return program(instanceCount=2, **DNS)


def tcp_ports_open(run) -> set[int]:
    """TCP ports the instances' own group opens (not the load balancer's)."""
    return {int(r.inputs["fromPort"]) for r in run.of_type(RULE)
            if r.inputs["ipProtocol"] == "tcp" and r.parent.split("::")[2].endswith(":network:Firewall")}


def listeners(run) -> dict[int, dict]:
    return {int(l["port"]): l for l in inputs_of(run, LISTENER)}


def group_of(run, listener) -> dict:
    (action,) = listener["defaultActions"]
    return next(r.inputs for r in run.of_type(TG) if r.state["arn"] == action["targetGroupArn"])


# -- the certificate -------------------------------------------------------------------

@pytest.mark.parametrize("run_name", ["autoscale_acm", "static_acm"])
def test_a_zone_gets_a_dns_validated_acm_certificate_for_the_dns_name(run_name, request):
    run = request.getfixturevalue(run_name)
    (cert,) = inputs_of(run, CERT)
    assert (cert["domainName"], cert["validationMethod"]) == ("turn.example.com", "DNS")


@pytest.mark.parametrize("run_name", ["autoscale_acm", "static_acm"])
def test_a_change_of_the_export_option_replaces_the_certificate(run_name, request):
    """ACM refuses to change `Export` after issuance, while the provider would update it in place."""
    (cert,) = request.getfixturevalue(run_name).of_type(CERT)
    assert "options" in cert.replace_on_changes


@pytest.mark.parametrize("run_name", ["autoscale_acm", "static_acm"])
def test_the_validation_record_is_acms_cname_in_the_zone(run_name, request):
    run = request.getfixturevalue(run_name)
    option = run.one(CERT).state["domainValidationOptions"][0]
    (record,) = [r for r in inputs_of(run, RECORD) if r["type"] == "CNAME"]
    assert (record["zoneId"], record["name"], record["type"], record["records"]) == (
        ZONE, option["resourceRecordName"], "CNAME", [option["resourceRecordValue"]])


@pytest.mark.parametrize("run_name", ["autoscale_acm", "static_acm"])
def test_validation_waits_for_the_record_and_names_the_certificate(run_name, request):
    run = request.getfixturevalue(run_name)
    validation = run.one(VALIDATION)
    (record,) = [r for r in run.of_type(RECORD) if r.inputs["type"] == "CNAME"]
    assert validation.inputs["certificateArn"] == run.one(CERT).state["arn"]
    assert validation.inputs["validationRecordFqdns"] == [record.state["fqdn"]]


@pytest.mark.parametrize("run_name", ["autoscale_acm", "static_acm"])
def test_no_private_key_reaches_pulumi_state_with_a_zone(run_name, request):
    run = request.getfixturevalue(run_name)
    assert [r for r in run.registrations if r.type == "stun-infra:tls:TlsCertificate"] == []
    assert run.of_type("tls:index/selfSignedCert:SelfSignedCert") == []
    names = [p["name"] for p in inputs_of(run, "aws:ssm/parameter:Parameter")]
    assert not [n for n in names if "tls" in n]
    assert "tls_certificate_pem" not in run.outputs and run.outputs["tls_certificate_arn"].startswith("arn:aws:acm:")


def test_only_static_mode_asks_for_an_exportable_certificate(autoscale_acm, static_acm):
    assert static_acm.one(CERT).inputs["options"] == {"export": "ENABLED"}
    assert "options" not in autoscale_acm.one(CERT).inputs


def test_without_a_zone_there_is_no_acm_certificate(any_run):
    assert any_run.of_type(CERT) == [] and any_run.of_type(VALIDATION) == []


# -- autoscale: the NLB ends TLS ---------------------------------------------------------

def test_autoscale_tls_listeners_on_443_and_5349_carry_the_validated_certificate(autoscale_acm):
    by_port = listeners(autoscale_acm)
    arn = autoscale_acm.one(VALIDATION).state["certificateArn"]
    assert {p: l["protocol"] for p, l in by_port.items()} == {3478: "TCP_UDP", 443: "TLS", 5349: "TLS"}
    for port in (443, 5349):
        assert by_port[port]["certificateArn"] == arn and by_port[port]["sslPolicy"] == TLS_POLICY


def test_the_tls_policy_allows_tls_1_2_and_newer_only():
    assert TLS_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def groups_reached(run, listener) -> list[dict]:
    """The listener's default group, then those its rules forward to (dual stack: IPv4 clients)."""
    arns = [listener["defaultActions"][0]["targetGroupArn"]]
    mine = next(r.state["arn"] for r in run.of_type(LISTENER) if r.inputs is listener)
    arns += [a["targetGroupArn"] for r in inputs_of(run, "aws:lb/listenerRule:ListenerRule")
             if r["listenerArn"] == mine for a in r["actions"]]
    by_arn = {r.state["arn"]: r.inputs for r in run.of_type(TG)}
    return [by_arn[arn] for arn in arns]


def test_tls_listeners_forward_plain_tcp_to_coturns_stun_port_keeping_client_addresses(autoscale_acm):
    for port in (443, 5349):
        groups = groups_reached(autoscale_acm, listeners(autoscale_acm)[port])
        assert {(g["protocol"], int(g["port"]), g["preserveClientIp"]) for g in groups} == {("TCP", 3478, "true")}
        # IPv4 clients to instance targets, IPv6 clients to IPv6 IP targets: each keeps its address
        assert sorted((g["targetType"], g.get("ipAddressType", "ipv4")) for g in groups) == [
            ("instance", "ipv4"), ("ip", "ipv6")]


def test_autoscale_instances_open_no_tls_port_when_the_nlb_ends_tls(autoscale_acm):
    assert tcp_ports_open(autoscale_acm) == {3478}


def test_coturn_serves_no_tls_behind_a_terminating_nlb(autoscale_acm):
    script = configure_of(autoscale_acm)
    assert "\nno-tls\n" in script and "tls-listening-port" not in script
    assert "aws ssm get-parameter" in script and "tls-certificate" not in script


def test_autoscale_turns_uris_name_the_certificates_host_443_first(autoscale_acm):
    turn = autoscale_acm.outputs["turn_uris"]
    assert [u for u in turn if u.startswith("turns:")] == [
        "turns:turn.example.com:443?transport=tcp", "turns:turn.example.com:5349?transport=tcp"]
    assert turn[0] == "turn:turn.example.com:3478?transport=udp"


def test_autoscale_passthrough_maps_every_tls_listener_to_coturns_tls_port():
    cert = make_ca().issue("turn.example.com")
    run = program(mode="autoscale", tlsCertificate=cert.cert_pem,
                  tlsPrivateKey=f"-----BEGIN PRIVATE KEY-----\n{UNSEEN_SECRET}\n-----END PRIVATE KEY-----\n",
                  secret_keys=("tlsPrivateKey",))
    by_port = listeners(run)
    assert {p: l["protocol"] for p, l in by_port.items()} == {3478: "TCP_UDP", 443: "TCP", 5349: "TCP"}
    for port in (443, 5349):
        group = group_of(run, by_port[port])
        assert (group["protocol"], int(group["port"])) == ("TCP", 443)
    assert tcp_ports_open(run) == {3478, 443}


# -- static: coturn serves the exported certificate on every port ------------------------

def test_static_instances_open_every_tls_port(static_acm):
    assert tcp_ports_open(static_acm) == {3478, 443, 5349}


def test_static_role_may_export_exactly_this_certificate(static_acm):
    policy = static_acm.named("aws:iam/rolePolicy:RolePolicy", "stun-infra-test-policy").inputs
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    export = statements["ExportOwnCertificate"]
    assert export["Action"] == ["acm:ExportCertificate"]
    assert export["Resource"] == static_acm.one(VALIDATION).state["certificateArn"]


def test_no_role_may_export_without_a_zone(any_run):
    assert not [p for p in inputs_of(any_run, "aws:iam/rolePolicy:RolePolicy") if "acm:" in p["policy"]]


def test_static_instance_package_exports_the_certificate_and_redirects_5349_to_443(static_acm):
    arn = static_acm.one(VALIDATION).state["certificateArn"]
    shipped = "\n".join(files_of(stored_package(static_acm)[1]).values())
    assert f'ARN="{arn}"' in shipped and "aws acm export-certificate" in shipped
    assert "tls-listening-port=443" in shipped and "redirect to :443" in shipped
    assert "tcp dport { 5349 }" in shipped and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in shipped


def test_static_instances_wait_for_the_issued_certificate(static_acm):
    validation = static_acm.one(VALIDATION).urn
    acm = next(r.urn for r in static_acm.registrations if r.type == "stun-infra:tls:AcmCertificate")
    for instance in static_acm.of_type("aws:ec2/instance:Instance"):
        assert acm in instance.dependencies or validation in instance.dependencies


def test_static_turns_uris_name_the_host_never_an_address(static_acm):
    secure = [u for u in static_acm.outputs["turn_uris"] if u.startswith("turns:")]
    assert secure == ["turns:turn.example.com:443?transport=tcp", "turns:turn.example.com:5349?transport=tcp"]


# -- without a zone: the self-signed default ---------------------------------------------

def test_self_signed_stacks_keep_5349_alone_and_list_turns_last(static_run):
    turn = static_run.outputs["turn_uris"]
    assert all(u.endswith(":5349?transport=tcp") for u in turn if u.startswith("turns:"))
    first_secure = min(i for i, u in enumerate(turn) if u.startswith("turns:"))
    assert all(u.startswith("turns:") for u in turn[first_secure:])
    assert tcp_ports_open(static_run) == {3478, 5349}


def test_tls_ports_reach_the_firewall_listeners_and_uris():
    run = program(mode="autoscale", tlsPorts=[8443], **DNS)
    assert {int(l["port"]) for l in inputs_of(run, LISTENER)} == {3478, 8443}
    assert [u for u in run.outputs["turn_uris"] if u.startswith("turns:")] == [
        "turns:turn.example.com:8443?transport=tcp"]


# -- the zone, checked before anything is created ----------------------------------------

def test_a_dns_name_outside_the_zone_is_refused():
    with pytest.raises(ConfigError) as caught:
        program(hosted_zones={ZONE: ("example.org.", False)}, **DNS)
    assert caught.value.problems == [
        "stun-infra:dnsName: got turn.example.com, which is outside zone Z0123456789ABCDEFGHIJ (example.org); "
        "use a name ending in .example.org"]


def test_a_private_zone_is_refused():
    with pytest.raises(ConfigError) as caught:
        program(hosted_zones={ZONE: ("example.com.", True)}, **DNS)
    assert caught.value.problems[0].startswith("stun-infra:dnsZoneId: got Z0123456789ABCDEFGHIJ, a private zone")


def test_the_zone_apex_itself_is_a_valid_name():
    run = program(hosted_zones={ZONE: ("example.com.", False)}, dnsZoneId=ZONE, dnsName="example.com")
    assert run.one(CERT).inputs["domainName"] == "example.com"


def test_a_wildcard_only_certificate_without_a_dns_name_gives_no_turns_uri_rather_than_an_address():
    wildcard = make_ca().issue("*.example.com")
    run = program(tlsCertificate=wildcard.cert_pem, tlsPrivateKey=wildcard.key_pem, secret_keys=("tlsPrivateKey",))
    assert run.outputs["turn_uris"] and not [u for u in run.outputs["turn_uris"] if u.startswith("turns:")]


def test_a_user_certificate_without_a_dns_name_gives_turns_the_certificates_name():
    issued = make_ca().issue("turn.example.net")
    run = program(tlsCertificate=issued.cert_pem, tlsPrivateKey=issued.key_pem, secret_keys=("tlsPrivateKey",))
    assert [u for u in run.outputs["turn_uris"] if u.startswith("turns:")] == [
        "turns:turn.example.net:443?transport=tcp", "turns:turn.example.net:5349?transport=tcp"]
