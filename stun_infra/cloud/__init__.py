"""What `pulumi up` creates: `stack.build_stack` wires one ComponentResource per concern
(`components/`), and `offline` runs the same program on Pulumi's mock engine.

May import: `stun_infra.settings`, `stun_infra.instance` (the boot script and the metric
names it publishes), `stun_infra.client` (the URI formats clients read). Never `commands`.
A new component goes in `components/<concern>.py`, wired in `stack.py`.
"""
