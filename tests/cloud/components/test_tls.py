"""TlsCertificate, built alone: self-signed for the domain when no certificate is given."""

from stun_infra.cloud.components.tls import TlsArgs, TlsCertificate
from tests.cloud.components.conftest import build_alone, component


def test_the_self_signed_certificate_alone_names_the_domain():
    run = build_alone(lambda: TlsCertificate("alone", TlsArgs(domain="turn.example.com")))
    component(run, "stun-infra:tls:TlsCertificate")
    assert run.one("tls:index/selfSignedCert:SelfSignedCert").inputs["dnsNames"] == ["turn.example.com"]
