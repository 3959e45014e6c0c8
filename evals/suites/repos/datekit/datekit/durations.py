"""Durations written like "1h30m" or "2d 4h"."""

from __future__ import annotations

import re

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"\s*(\d+)\s*([a-z]*)\s*")


def parse_duration(text: str, default_unit: str = "s") -> int:
    """Seconds in a duration such as "1h30m", "2d 4h" or "90"; a number without a unit is in `default_unit`."""
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration")
    total, pos = 0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read duration {text!r}")
        number, unit = match.groups()
        unit = unit or default_unit
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r} in {text!r}")
        total += int(number) * UNITS[unit]
        pos = match.end()
    return total


def format_duration(seconds: int) -> str:
    """Largest units first, zero parts left out: 5400 -> "1h 30m"; "0s" for zero."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    parts = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"
