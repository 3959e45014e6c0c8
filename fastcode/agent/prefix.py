"""Prompt-cache discipline, measured: a hash of each call's prefix and whether it broke the previous call's."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class PrefixTracker:
    """Remembers what was last sent to each model; a call whose messages do not extend it is a prefix break."""

    def __init__(self) -> None:
        self._last: dict[str, list[str]] = {}

    def check(self, model_key: str, tools: list[dict[str, Any]], messages: list[dict[str, Any]]) -> tuple[str, bool]:
        """Return (prefix hash, prefix_break) for a call about to be sent, and remember it."""
        lines = [_line(tools), *(_line(m) for m in messages)]
        newest = len(messages)
        while newest > 0 and messages[newest - 1].get("role") in ("user", "tool"):
            newest -= 1
        digest = hashlib.sha256("\n".join(lines[: newest + 1]).encode(errors="surrogatepass")).hexdigest()[:16]
        previous = self._last.get(model_key)
        broke = previous is not None and lines[: len(previous)] != previous
        self._last[model_key] = lines
        return digest, broke
