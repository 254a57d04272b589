"""A certificate and its key, made when a test asks (never stored in the repository), by the
product's own maker (stun_infra.common.certificates)."""

from __future__ import annotations

from functools import cache

from stun_infra.common.certificates import key_pem, new_key, self_signed


def private_key_pem() -> str:
    return key_pem(new_key())


@cache
def certificate_and_key(common_name: str = "turn.example.com") -> tuple[str, str]:
    """(certificate PEM, private key PEM): self-signed, P-256, valid for a day."""
    return self_signed(common_name, days=1)
