"""ServerSecrets, built alone: a TURN secret generated and stored under the path, as a secret."""

from stun_infra.cloud.components.secrets import SecretsArgs, ServerSecrets
from tests.cloud.components.conftest import TAGS, build_alone, component


def test_the_secrets_alone_store_a_generated_turn_secret_under_the_path():
    run = build_alone(lambda: ServerSecrets("alone", SecretsArgs(path="/stun-infra/alone", turn=True,
                                                                tls_certificate_pem=None, tls_private_key_pem=None,
                                                                tags=TAGS)))
    component(run, "stun-infra:secrets:ServerSecrets")
    (parameter,) = [r for r in run.of_type("aws:ssm/parameter:Parameter")]
    assert parameter.inputs["name"].startswith("/stun-infra/alone/")
    assert "value" in parameter.secret_inputs
