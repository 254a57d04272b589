"""The coturn fixtures live in tests/support/coturn.py (commands and metrics tests use them too)."""

from tests.support.coturn import netns, stun_only_server, turn_server  # noqa: F401 - fixtures
