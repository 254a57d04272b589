"""Certificate: a public ACM certificate for the stack's DNS name, validated in its Route 53 zone.

With `dnsZoneId` + `dnsName` (and no certificate of the user's) this replaces the
self-signed default, so browsers accept `turns:`. ACM keeps the private key: nothing
of it reaches Pulumi state. DNS validation lets ACM renew by itself as long as the
validation record stays (https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html):
- autoscale mode: the NLB's TLS listeners serve it (ACM deploys renewals to them);
- static mode: it is requested exportable (`options.export`, billed per issuance and
  renewal), and each instance exports it with its role at boot and daily after, so a
  renewal reaches coturn without a `pulumi up`. ACM renews an exported certificate 60
  days before expiry (https://docs.aws.amazon.com/acm/latest/userguide/managed-renewal.html);
  certificates requested before 2025-06-17 cannot be exported. Switching the stack's
  mode turns export on or off, which ACM allows only on a new certificate: it is replaced
  (created, listeners and instances moved to it, then the old one deleted).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT

VALIDATION_TTL = 300


@dataclass(frozen=True)
class AcmArgs:
    domain: str
    zone_id: str
    exportable: bool
    tags: dict[str, str]


class AcmCertificate(pulumi.ComponentResource):
    certificate_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AcmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:tls:AcmCertificate", name, None, opts)
        certificate = aws.acm.Certificate(
            f"{name}-acm", domain_name=args.domain, validation_method="DNS",
            options=aws.acm.CertificateOptionsArgs(export="ENABLED") if args.exportable else None,
            tags=tagged(args.tags, f"{name}-acm"),
            # ACM cannot change Export after issuance; the provider would try in place.
            opts=child_opts(self, replace_on_changes=["options"]))
        # One name, one validation record: ACM's CNAME, kept so that ACM can renew.
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-acm-validation", zone_id=args.zone_id, name=option.resource_record_name,
            type=option.resource_record_type, records=[option.resource_record_value],
            ttl=VALIDATION_TTL, allow_overwrite=True, opts=child_opts(self))
        validation = aws.acm.CertificateValidation(
            f"{name}-acm-validated", certificate_arn=certificate.arn, validation_record_fqdns=[record.fqdn],
            opts=child_opts(self))
        # The ARN once ACM has issued it: listeners and instances wait for this.
        self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificate_arn": self.certificate_arn})
