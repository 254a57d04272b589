"""What a user runs against a server: a STUN/TURN client, the probes built on it, TURN
REST API credentials, and the parsing of targets and stack outputs.

May import: `stun_infra.settings` only. Never Pulumi, never `cloud`, `instance` or
`commands`: a client needs nothing of how the server was deployed.
"""
