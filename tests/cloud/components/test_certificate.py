"""AcmCertificate, built alone: requested for the name and validated in the zone."""

from stun_infra.cloud.components.certificate import AcmArgs, AcmCertificate
from tests.cloud.components.conftest import TAGS, build_alone, component

ZONE = "Z0123456789ABCDEFGHIJ"


def test_the_acm_certificate_alone_is_validated_by_a_record_in_the_zone():
    run = build_alone(lambda: AcmCertificate("alone", AcmArgs(domain="turn.example.com", zone_id=ZONE,
                                                               exportable=False, tags=TAGS)))
    component(run, "stun-infra:tls:AcmCertificate")
    assert run.one("aws:acm/certificate:Certificate").inputs["domainName"] == "turn.example.com"
    assert run.one("aws:route53/record:Record").inputs["zoneId"] == ZONE
