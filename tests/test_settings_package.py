"""The settings package's own seams: the TLS plan decided once, and keys the caller could not
read left unchecked (what the offline engine tells it, without settings knowing why)."""

from __future__ import annotations

import pytest

from stun_infra.settings import ConfigError, load_settings
from stun_infra.settings.tls import HTTPS_PORT, TURNS_PORT
from tests.support.pem import certificate_and_key

ZONE = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}


def settings(**raw):
    return load_settings({k: str(v) if isinstance(v, int) else v for k, v in raw.items()}, stack="dev",
                         region="eu-west-3")


def test_the_plan_is_computed_once_and_shared():
    s = settings()
    assert s.tls is s.tls


@pytest.mark.parametrize("raw, source", [({}, "self-signed"), (ZONE, "acm")])
def test_the_certificate_comes_from_acm_with_a_zone_else_it_is_self_signed(raw, source):
    assert settings(**raw).tls.source == source


def test_the_users_certificate_wins_over_acm():
    cert, key = certificate_and_key("turn.example.com")
    with pytest.raises(ConfigError):  # a plain-text key is refused: only the source is looked at below
        settings(**ZONE, tlsCertificate=cert, tlsPrivateKey=key)
    s = load_settings({**ZONE, "tlsCertificate": cert, "tlsPrivateKey": key}, stack="dev", region="eu-west-3",
                      secret_keys={"stun-infra:tlsPrivateKey"})
    assert (s.tls.source, s.tls.host) == ("user", "turn.example.com")


@pytest.mark.parametrize("mode, raw, ends_at_load_balancer, coturn_ports", [
    ("static", ZONE, False, (HTTPS_PORT,)),
    ("autoscale", ZONE, True, ()),
    ("autoscale", {}, False, (TURNS_PORT,)),
])
def test_tls_ends_at_the_load_balancer_only_in_autoscale_mode_with_acm(mode, raw, ends_at_load_balancer,
                                                                       coturn_ports):
    plan = settings(mode=mode, **raw).tls
    assert (plan.ends_at_load_balancer, plan.coturn_ports) == (ends_at_load_balancer, coturn_ports)


def test_a_trusted_certificate_is_offered_on_443_and_5349_and_the_self_signed_on_5349():
    assert (settings(**ZONE).tls.ports, settings().tls.ports) == ((HTTPS_PORT, TURNS_PORT), (TURNS_PORT,))


def test_a_key_the_caller_could_not_read_is_left_to_a_run_that_can():
    stand_in = "-----BEGIN PRIVATE KEY-----\nnot readable here\n-----END PRIVATE KEY-----\n"
    raw = {"turnSecret": stand_in}
    with pytest.raises(ConfigError):
        load_settings(raw, stack="dev", region="eu-west-3", secret_keys={"stun-infra:turnSecret"})
    s = load_settings(raw, stack="dev", region="eu-west-3", secret_keys={"stun-infra:turnSecret"},
                      unreadable={"turnSecret"})
    assert s.turn_secret == stand_in
