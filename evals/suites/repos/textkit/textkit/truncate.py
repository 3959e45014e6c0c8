"""Shortening text for fixed-width displays."""

from __future__ import annotations


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """`text` if it fits in `limit` characters, else its start followed by `ellipsis`, `limit` characters in all."""
    if limit < len(ellipsis):
        raise ValueError(f"limit {limit} is shorter than the ellipsis {ellipsis!r}")
    if len(text) <= limit:
        return text
    return text[: limit - len(ellipsis)] + ellipsis
