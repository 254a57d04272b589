"""dnsName within what ACM's RequestCertificate takes (botocore's acm model): refused at
`plan` rather than by ACM halfway through `pulumi up`."""

from __future__ import annotations

import botocore.session
import pytest

from stun_infra.settings import ACM_DOMAIN_PATTERN, ConfigError, load_settings

ZONE = "Z0123456789ABCDEFGHIJ"


def problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test", region="eu-west-3")
    return caught.value.problems


def acm_domain_field():
    model = botocore.session.get_session().get_service_model("acm")
    return model.operation_model("RequestCertificate").input_shape.members["DomainName"]


def test_the_domain_pattern_is_botocores_without_the_wildcard():
    assert acm_domain_field().metadata["pattern"] == r"(\*\.)?" + ACM_DOMAIN_PATTERN


def test_acm_documents_the_64_character_limit_that_settings_enforce():
    assert "cannot exceed 64 octets" in acm_domain_field().documentation


def test_a_dns_name_past_64_characters_is_refused_for_an_acm_certificate():
    name = "a" * 50 + ".example.com" + ".xy"  # 65 characters
    assert len(name) == 65
    assert problems(dnsZoneId=ZONE, dnsName=name) == [
        "stun-infra:dnsName: got 65 characters, ACM's certificate for it takes at most 64; choose a shorter "
        "name or bring your own certificate (stun-infra:tlsCertificate and stun-infra:tlsPrivateKey)"]


def test_a_dns_name_of_64_characters_is_accepted():
    name = "a" * 49 + ".example.com" + ".xy"
    assert len(name) == 64
    assert load_settings({"dnsZoneId": ZONE, "dnsName": name}, stack="test", region="eu-west-3").dns_name == name


@pytest.mark.parametrize("name", ["localhost", "turn.example.c", "turn.-example.com"])
def test_a_dns_name_acm_cannot_certify_is_refused(name):
    found = problems(dnsZoneId=ZONE, dnsName=name)
    assert len(found) == 1 and found[0].startswith(f'stun-infra:dnsName: got "{name}", must be'), found
