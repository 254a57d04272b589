"""What runs on an instance: coturn's config, the boot script (user-data) that installs
and hardens it, the kernel binding counters and the metrics reporter. Python computes
values here; the text itself is rendered from the top-level `templates/`.

May import: `stun_infra.settings` only. Never Pulumi, never `cloud`, `client` or
`commands`: this side must render the same bytes whether `pulumi up`, `render` or a
test asks. A new boot stage goes in `templates/user-data.sh.j2` with its values from
`userdata.py`; a new metric in `metrics.py`.
"""
