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
  certificates requested before 2025-06-17 cannot be exported. Turning export on (a
  switch to static mode) is allowed by ACM only on a new certificate: it is replaced
  (created, listeners and instances moved to it, then the old one deleted). Turning it
  off is no change at all to the provider (`options` and `export` are optional and
  computed: an omitted value keeps what ACM reports), so the exportable certificate
  stays; the README says how to replace it.
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
    alternative_names: tuple[str, ...] = ()  # several regions: each region's own name
    # Several regions: ACM's validation record of a name is the same for every certificate of
    # the account, whatever the region, so one region's component writes them and the others
    # wait for those (two writers of one record would delete it with either).
    validation_fqdns: pulumi.Input[list[str]] | None = None


class AcmCertificate(pulumi.ComponentResource):
    certificate_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AcmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:tls:AcmCertificate", name, None, opts)
        alternative = {"subject_alternative_names": list(args.alternative_names)} if args.alternative_names else {}
        certificate = aws.acm.Certificate(
            f"{name}-acm", domain_name=args.domain, validation_method="DNS", **alternative,
            options=aws.acm.CertificateOptionsArgs(export="ENABLED") if args.exportable else None,
            tags=tagged(args.tags, f"{name}-acm"),
            # ACM cannot change Export after issuance; the provider would try in place.
            opts=child_opts(self, replace_on_changes=["options"]))
        # One validation record per name: ACM's CNAME, kept so that ACM can renew.
        fqdns = args.validation_fqdns
        if fqdns is None:
            records = [self._validation_record(f"{name}-acm-validation" + (f"-{i}" if i else ""), certificate, domain,
                                               args.zone_id)
                       for i, domain in enumerate((args.domain, *args.alternative_names))]
            fqdns = [record.fqdn for record in records]
        self.validation_fqdns = fqdns
        validation = aws.acm.CertificateValidation(
            f"{name}-acm-validated", certificate_arn=certificate.arn, validation_record_fqdns=fqdns,
            opts=child_opts(self))
        # The ARN once ACM has issued it: listeners and instances wait for this.
        self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificate_arn": self.certificate_arn})

    def _validation_record(self, name: str, certificate: aws.acm.Certificate, domain: str,
                           zone_id: str) -> aws.route53.Record:
        option = certificate.domain_validation_options.apply(
            lambda options: next(o for o in options if o.domain_name == domain))
        return aws.route53.Record(
            name, zone_id=zone_id, name=option.resource_record_name,
            type=option.resource_record_type, records=[option.resource_record_value],
            ttl=VALIDATION_TTL, allow_overwrite=True, opts=child_opts(self))
