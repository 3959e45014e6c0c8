"""Jinja rendering of the templates in prompts/ (StrictUndefined: a missing variable is an error, not a blank)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from fastcode.core.resources import data_dir


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("prompts")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, **variables: Any) -> str:
    """Render prompts/NAME.md.j2; the result is stripped so that byte-identical inputs give identical prompts."""
    return _environment().get_template(f"{name}.md.j2").render(**variables).strip()
