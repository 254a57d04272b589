"""TURN REST API credentials (coturn accepting them is proven in test_turn_server.py)."""

from __future__ import annotations

import base64

import pytest

from stun_infra.client.credentials import ice_servers, mint, password_for

# Known answer, computed independently with the openssl CLI:
#   printf %s "1700000000:alice" | openssl dgst -sha1 -hmac north -binary | base64
KNOWN_SECRET, KNOWN_USERNAME, KNOWN_PASSWORD = "north", "1700000000:alice", "Cd/49soE35ICqcJF/bCTn8Z4OyE="


def test_password_matches_the_known_answer():
    assert password_for(KNOWN_SECRET, KNOWN_USERNAME) == KNOWN_PASSWORD


def test_mint_reproduces_the_known_answer():
    assert mint(KNOWN_SECRET, user="alice", ttl_seconds=100, now=1_699_999_900) == (KNOWN_USERNAME, KNOWN_PASSWORD)


def test_username_is_expiry_colon_user():
    username, _ = mint("s3", user="bob", ttl_seconds=3600, now=1_000.9)
    assert username == "4600:bob"


def test_default_user_is_stun_infra():
    username, _ = mint("s3", ttl_seconds=60, now=0)
    assert username == "60:stun-infra"


def test_password_is_base64_of_a_20_byte_hmac_sha1():
    _, password = mint("s3", ttl_seconds=60)
    assert len(password) == 28 and len(base64.b64decode(password, validate=True)) == 20


def test_expiry_defaults_to_now_plus_ttl(monkeypatch):
    monkeypatch.setattr("stun_infra.client.credentials.time.time", lambda: 5_000.0)
    assert mint("s3", ttl_seconds=10)[0].startswith("5010:")


@pytest.mark.parametrize("kwargs, message", [
    (dict(secret="", ttl_seconds=60), "secret"),
    (dict(secret="s3", ttl_seconds=0), "ttl_seconds"),
    (dict(secret="s3", ttl_seconds=60, user="a:b"), "user"),
    (dict(secret="s3", ttl_seconds=60, user=""), "user"),
])
def test_mint_refuses_bad_input_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mint(**kwargs)


def test_ice_servers_lists_stun_without_and_turn_with_credentials():
    assert ice_servers(["stun:turn.example.com:3478"],
                       ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
                       "60:stun-infra", "pw") == {"iceServers": [
        {"urls": ["stun:turn.example.com:3478"]},
        {"urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
         "username": "60:stun-infra", "credential": "pw"},
    ]}


def test_ice_servers_leaves_out_turn_when_there_is_none():
    assert ice_servers(["stun:turn.example.com:3478"], [], "", "") == {
        "iceServers": [{"urls": ["stun:turn.example.com:3478"]}]}


def test_a_username_longer_than_coturn_takes_is_refused():
    """coturn 4.6.1 takes usernames of at most 512 bytes (STUN_MAX_USERNAME_SIZE): `<expiry>:<user>`."""
    username, _ = mint("s", user="u" * 501, ttl_seconds=60, now=1_700_000_000)
    assert len(username.encode()) == 512
    with pytest.raises(ValueError, match="at most 512 bytes, so at most 501 for the user"):
        mint("s", user="u" * 502, ttl_seconds=60, now=1_700_000_000)


@pytest.mark.parametrize("user", ["a\nb", "a\x1bb"])
def test_a_username_with_a_control_character_is_refused_and_escaped(user):
    with pytest.raises(ValueError) as caught:
        mint("s", user=user, ttl_seconds=60)
    assert "one line of visible characters" in str(caught.value) and user not in str(caught.value)
