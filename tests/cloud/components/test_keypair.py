"""SshKeyPair, built alone: the generated key's public half is what EC2 gets."""

from stun_infra.cloud.components.keypair import KeyPairArgs, SshKeyPair
from tests.cloud.components.conftest import TAGS, build_alone, component


def test_the_key_pair_alone_registers_the_generated_public_key():
    run = build_alone(lambda: SshKeyPair("alone", KeyPairArgs(tags=TAGS)))
    component(run, "stun-infra:access:SshKeyPair")
    key = run.one("tls:index/privateKey:PrivateKey")
    assert run.one("aws:ec2/keyPair:KeyPair").inputs["publicKey"] == key.state["publicKeyOpenssh"]
