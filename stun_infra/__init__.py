"""stun-infra, laid out by side.

- `cloud/`: what `pulumi up` creates (the stack, its components, the offline engine).
- `instance/`: what runs on an instance (coturn's config, the boot script, counters, metrics).
- `client/`: what a user runs against a server (STUN/TURN client, probes, credentials).
- `commands/`: the CLI over the three.
- `settings.py`: the stack's validated config, shared by every side.

Import rules (tests/test_layout.py keeps them true): `settings` imports no other module
of ours; `instance` and `client` import only `settings` and themselves, and never
Pulumi; `cloud` may import `settings`, `instance` (it renders the boot script) and
`client` (stack outputs are what clients read); nothing but `commands` and `cli`
imports `commands`.
"""
