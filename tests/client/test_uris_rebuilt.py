"""URIs are parsed and rebuilt, never edited as text or passed on as given: `probe -` names
each public IP in URIs built from parts, and `credentials` emits only URIs of the form the
stack outputs use (no zone, no transport on stun:, each scheme in its own list)."""

from __future__ import annotations

import json

import pytest

from stun_infra.cli import main
from stun_infra.client.targets import InputError, read_servers


def targets_of(**outputs) -> list[str]:
    return read_servers(json.dumps(outputs)).targets()


def test_each_public_ip_gets_the_uris_rebuilt_for_it_even_when_the_host_is_a_scheme_name():
    assert targets_of(stun_uris=["stun:stun:3478"], turn_uris=["turns:turn:443?transport=tcp"],
                      public_ips=["203.0.113.7"]) == [
        "stun:stun:3478", "turns:turn:443?transport=tcp", "stun:203.0.113.7:3478"]


def test_a_turn_host_named_like_its_scheme_is_rebuilt_for_each_public_ip():
    assert targets_of(stun_uris=[], turn_uris=["turns:turn:443?transport=tcp", "turn:turn:3478?transport=udp"],
                      public_ips=["203.0.113.7"]) == [
        "turns:turn:443?transport=tcp", "turn:turn:3478?transport=udp",
        "turns:203.0.113.7:443?transport=tcp", "turn:203.0.113.7:3478?transport=udp"]


def test_an_ipv6_address_spelt_two_ways_is_probed_once():
    assert targets_of(stun_uris=["stun:[2001:DB8:0::1]:3478"], public_ipv6s=["2001:db8::1"]) == \
        ["stun:[2001:db8::1]:3478"]


def test_a_public_ip_with_a_zone_is_refused():
    with pytest.raises(InputError, match="not an IP address"):
        read_servers(json.dumps({"stun_uris": ["stun:turn.example.com:3478"], "public_ipv6s": ["fe80::1%eth0"]}))


@pytest.mark.parametrize("key, uri", [("stun_uris", "turn:turn.example.com:3478?transport=udp"),
                                      ("turn_uris", "stun:turn.example.com:3478")])
def test_a_uri_in_the_other_schemes_list_is_refused(key, uri):
    with pytest.raises(InputError) as caught:
        read_servers(json.dumps({key: [uri], "turn_shared_secret": "s"}))
    assert f"{key}: '{uri}' is a {uri.split(':')[0]}: URI, where" in str(caught.value)


def credentials(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["credentials", "--secret", "not-a-real-secret", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("target", ["stun:turn.example.com:3478?transport=udp", "stuns:turn.example.com?transport=tcp"])
def test_credentials_refuses_a_stun_uri_with_a_transport(capsys, target):
    code, out, err = credentials(capsys, target)
    assert code == 2 and out == "" and "takes no ?transport (RFC 7064)" in err


@pytest.mark.parametrize("target", ["[fe80::1%eth0]:3478", "turn:[fe80::1%x y]:3478?transport=udp",
                                    "fe80::1%eth0"])
def test_credentials_refuses_an_ipv6_zone(capsys, target):
    code, out, err = credentials(capsys, target)
    assert code == 2 and out == "" and "names a zone" in err


def test_credentials_emits_uris_rebuilt_in_one_spelling(capsys):
    code, out, _ = credentials(capsys, "TURN:[2001:DB8:0::1]:3478", "stun:[2001:db8::1]")
    assert code == 0
    urls = [url for server in json.loads(out)["iceServers"] for url in server["urls"]]
    assert urls == ["stun:[2001:db8::1]:3478", "turn:[2001:db8::1]:3478?transport=udp"]
