"""Server secrets: generated here, stored in Parameter Store, read by the instance role at boot.

User-data carries only the parameter names, never a value.

The TURN REST secret is the generated one until a rotation sets `turnSecret`; during a
rotation `turnSecretPrevious` is a second parameter, created before the current one changes
(so no reader ever sees the new secret without the old one) and deleted when it ends. App
backends read the current one only, with `app_policy`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT
from stun_infra.instance.secret_sync import SecretParameters
from stun_infra.instance.boot_inputs import ParameterNames

SECRET_LENGTH = 48


@dataclass(frozen=True)
class SecretsArgs:
    path: str                      # e.g. /stun-infra/dev
    turn: bool
    tls_certificate_pem: pulumi.Input[str] | None  # None: ACM holds the certificate
    tls_private_key_pem: pulumi.Input[str] | None
    tags: dict[str, str]
    turn_secret: pulumi.Input[str] | None = None           # None: the generated one
    previous_turn_secret: pulumi.Input[str] | None = None  # set during a rotation only
    # Another region's TURN secret (the home region's): one secret, stored in each region.
    shared_turn_secret: pulumi.Input[str] | None = None


def app_policy(current_parameter_arn: str) -> str:
    """The IAM policy an app backend needs to mint credentials: read the current secret, nothing
    else (the previous one signs nothing new). No kms:Decrypt: see access.py."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadCurrentTurnSecret", "Effect": "Allow", "Action": ["ssm:GetParameter"],
        "Resource": [current_parameter_arn]}]}, indent=2)


class ServerSecrets(pulumi.ComponentResource):
    turn_secret: pulumi.Output[str] | None
    parameter_arns: list[pulumi.Output[str]]

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:secrets:ServerSecrets", name, None, opts)
        tls = args.tls_certificate_pem is not None
        self.names = ParameterNames.under(args.path, args.turn, tls=tls)
        self.turn_secret = None
        self.turn_secret_parameter: pulumi.Output[str] | None = None
        self.turn_secret_arn: pulumi.Output[str] | None = None
        self.app_policy: pulumi.Output[str] | None = None
        turn_param = None
        if args.turn:
            generated = args.shared_turn_secret or random.RandomPassword(
                f"{name}-turn-secret", length=SECRET_LENGTH, special=False, opts=child_opts(self)).result
            self.turn_secret = pulumi.Output.secret(args.turn_secret or generated)
            rotation = SecretParameters.under(args.path)
            previous = self._parameter(
                name, "turn-secret-previous", rotation.previous, "SecureString",
                pulumi.Output.secret(args.previous_turn_secret),
                "TURN REST API shared secret before the current one, accepted during a rotation",
                args.tags) if args.previous_turn_secret else None
            turn_param = self._parameter(name, "turn-secret", self.names.turn_secret, "SecureString",
                                         self.turn_secret, "TURN REST API shared secret", args.tags,
                                         depends_on=[previous] if previous else [])
            self.turn_secret_parameter = turn_param.name
            self.turn_secret_arn = turn_param.arn
            self.app_policy = turn_param.arn.apply(app_policy)
        key_param = cert_param = None
        if tls:
            key_param = self._parameter(name, "tls-key", self.names.tls_private_key, "SecureString",
                                        pulumi.Output.secret(args.tls_private_key_pem),
                                        "Private key of the TLS port's certificate", args.tags)
            cert_param = self._parameter(name, "tls-cert", self.names.tls_certificate, "String",
                                         args.tls_certificate_pem, "TLS port's certificate chain", args.tags)
        params = [p for p in (turn_param, key_param, cert_param) if p is not None]
        self.parameter_arns = [p.arn for p in params]
        # What the boot reads: the TLS parameters at their current versions (a new certificate
        # rolls out); the TURN secret by name only, read by the secret sync at boot and every
        # minute after, so a rotation step changes nothing an instance boots from.
        self.pinned_names: pulumi.Output[ParameterNames] = pulumi.Output.all(
            cert_param.version if cert_param else None, key_param.version if key_param else None,
        ).apply(lambda v: self.names.at(turn_secret=None, tls_certificate=v[0], tls_private_key=v[1]))
        self.register_outputs({"parameter_arns": self.parameter_arns,
                               "turn_secret_parameter": self.turn_secret_parameter})

    def _parameter(self, name: str, suffix: str, path: str, kind: str, value: pulumi.Input[str],
                   description: str, tags: dict[str, str],
                   depends_on: list[pulumi.Resource] | None = None) -> aws.ssm.Parameter:
        # Intelligent-Tiering moves a chain over 4 KB to the advanced tier instead of failing.
        # A public value goes in insecure_value so diffs show it; `value` is always a secret.
        content = {"value": value} if kind == "SecureString" else {"insecure_value": value}
        return aws.ssm.Parameter(
            f"{name}-{suffix}", name=path, type=kind, description=description, **content,
            tier="Intelligent-Tiering", tags=tagged(tags, path),
            opts=child_opts(self, depends_on=depends_on or []))
