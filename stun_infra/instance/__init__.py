"""What runs on an instance: the instance package (`package.py`: coturn's config, every boot
stage's programs, units and rulesets, and `stun-infra-configure`), the user data that fetches
and installs it (`userdata.py`), the kernel binding counters and the metrics reporter. Python
computes values here; the text itself is rendered from the top-level `templates/`.

May import: `stun_infra.settings` only. Never Pulumi, never `cloud`, `client` or
`commands`: this side must render the same bytes whether `pulumi up`, `render` or a
test asks. A new boot stage is a module with `stage(settings, boot) -> Stage | None`
(`stage.py`), its templates, and one line in `stages.STAGES`; a new metric goes in
`metrics.py`.
"""
