"""Greedy word wrapping."""

from __future__ import annotations


def wrap(text: str, width: int = 70) -> list[str]:
    """Split `text` into lines of at most `width` characters, breaking only between words.

    Runs of whitespace count as one space. A word longer than `width` gets a line of its own.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    lines: list[str] = []
    line = ""
    for word in text.split():
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def fill(text: str, width: int = 70) -> str:
    """`wrap`, joined with newlines."""
    return "\n".join(wrap(text, width))


def indent(text: str, prefix: str = "    ") -> str:
    """Prefix every non-blank line of `text`."""
    return "\n".join(prefix + line if line.strip() else line for line in text.split("\n"))
