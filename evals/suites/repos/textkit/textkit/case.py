"""Headline capitalisation."""

from __future__ import annotations

MINOR_WORDS = frozenset({"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"})


def title_case(text: str) -> str:
    """Capitalise every word except minor words ("of", "the", ...), which stay lower case unless they are the
    first or the last word."""
    parts = text.split()
    out = []
    for i, word in enumerate(parts):
        lower = word.lower()
        if 0 < i < len(parts) - 1 and lower in MINOR_WORDS:
            out.append(lower)
        else:
            out.append(lower[:1].upper() + lower[1:])
    return " ".join(out)
