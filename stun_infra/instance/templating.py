"""Jinja2 rendering of the files an instance runs: templates/ is their single source."""

from __future__ import annotations

from functools import cache

import jinja2

from stun_infra.common.project import PROJECT_ROOT

TEMPLATES_DIR = PROJECT_ROOT / "templates"


@cache
def environment() -> jinja2.Environment:
    """Strict: a value the template needs but Python did not pass is an error, not ''."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str, **values: object) -> str:
    return environment().get_template(template).render(**values)
