"""Key pair: generated in the stack (pulumi-tls), never written to disk."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT


@dataclass(frozen=True)
class KeyPairArgs:
    tags: dict[str, str]
    # Another region's key (the home region's): one key opens every region's instances.
    shared_key: "SshKeyPair | None" = None


class SshKeyPair(pulumi.ComponentResource):
    """RSA so that the PEM output works with every ssh client; the private key is a secret output."""

    def __init__(self, name: str, args: KeyPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:access:SshKeyPair", name, None, opts)
        if args.shared_key:
            public_key, private_key = args.shared_key.public_key, args.shared_key.private_key_pem
        else:
            key = tls.PrivateKey(f"{name}-key", algorithm="RSA", rsa_bits=4096, opts=child_opts(self))
            public_key, private_key = key.public_key_openssh, key.private_key_pem
        self.key_pair = aws.ec2.KeyPair(
            f"{name}", public_key=public_key, tags=tagged(args.tags, name), opts=child_opts(self))
        self.public_key = public_key
        self.key_name = self.key_pair.key_name
        self.private_key_pem = pulumi.Output.secret(private_key)
        self.register_outputs({"key_name": self.key_name, "private_key_pem": self.private_key_pem})
