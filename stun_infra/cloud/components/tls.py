"""TLS: the certificate coturn serves on the TLS port, self-signed unless one is supplied."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from stun_infra.cloud.components.base import child_opts
from stun_infra.common.project import PROJECT
from stun_infra.common.certificates import certificate_common_name

VALIDITY_HOURS = 365 * 24
RENEW_BEFORE_HOURS = 30 * 24


@dataclass(frozen=True)
class TlsArgs:
    domain: str
    certificate_pem: str = ""          # user-supplied chain, or "" for self-signed
    private_key_pem: pulumi.Input[str] | None = None  # user-supplied key (a secret)


class TlsCertificate(pulumi.ComponentResource):
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: TlsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:tls:TlsCertificate", name, None, opts)
        if args.certificate_pem:
            self.self_signed = False
            self.certificate_pem = pulumi.Output.from_input(args.certificate_pem)
            self.private_key_pem = pulumi.Output.secret(args.private_key_pem)
        else:
            self.self_signed = True
            key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child_opts(self))
            cert = tls.SelfSignedCert(
                f"{name}-cert", private_key_pem=key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(common_name=certificate_common_name(args.domain), organization="stun-infra"),
                dns_names=[args.domain], validity_period_hours=VALIDITY_HOURS,
                early_renewal_hours=RENEW_BEFORE_HOURS,
                allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
                opts=child_opts(self))
            self.certificate_pem = pulumi.Output.unsecret(cert.cert_pem)  # public by nature
            self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certificate_pem": self.certificate_pem})
