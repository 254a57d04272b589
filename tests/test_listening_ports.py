"""Every port the instances and the NLB listen on, however it was chosen, differs from every
other: equal ones make duplicate security group rules (InvalidPermission.Duplicate), two NLB
listeners on one port (DuplicateListener), or a redirect of the STUN port to coturn's TLS one."""

from __future__ import annotations

import itertools

import pytest

from stun_infra.settings import ConfigError, load_settings

ZONE = {"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com"}


def problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test", region="eu-west-3")
    return caught.value.problems


@pytest.mark.parametrize("stun_port, zone", [(5349, {}), (5349, ZONE), (443, ZONE)],
                         ids=["5349-self-signed", "5349-trusted", "443-trusted"])
def test_a_stun_port_on_an_automatic_tls_port_is_refused(stun_port, zone):
    assert problems(stunPort=str(stun_port), **zone) == [
        f"stun-infra:stunPort: got {stun_port}, which is an automatic TLS port of an empty stun-infra:tlsPorts "
        f"(with {'a trusted' if zone else 'the self-signed'} certificate: "
        f"{'443, 5349' if zone else '5349'}); choose another stunPort (3478 is STUN's own) "
        "or list stun-infra:tlsPorts without it"]


def test_port_443_is_free_for_stun_without_a_trusted_certificate():
    assert load_settings({"stunPort": "443"}, stack="test", region="eu-west-3").tls.ports == (5349,)


def test_a_relay_range_over_an_automatic_tls_port_is_refused():
    assert problems(relayMinPort="5000", relayMaxPort="6000") == [
        "stun-infra:relayMinPort: the relay range 5000-6000 overlaps an automatic TLS port of an empty "
        "stun-infra:tlsPorts (5349); move the range above it"]


CASES = list(itertools.product(
    ("443", "3478", "5349", "40000"),                       # stunPort
    ("[]", "[443]", "[3478]", "[443, 5349]", "[40000]"),     # tlsPorts
    ({}, ZONE),                                              # self-signed / trusted
    (("1024", "4000"), ("40000", "41000"), ("49152", "65535")),  # relay range
))


@pytest.mark.parametrize("stun, tls, zone, relay", CASES)
def test_every_accepted_stack_listens_on_distinct_ports(stun, tls, zone, relay):
    """The kind, not the instance: any combination the settings accept has no port twice."""
    raw = {"stunPort": stun, "tlsPorts": tls, "relayMinPort": relay[0], "relayMaxPort": relay[1], **zone}
    try:
        s = load_settings(raw, stack="test", region="eu-west-3")
    except ConfigError:
        return
    ports = [s.stun_port, *s.tls.ports]
    assert len(set(ports)) == len(ports), ports
    assert not [p for p in ports if s.relay_min_port <= p <= s.relay_max_port], (ports, relay)
