"""The `thought` of a JSON reply, as it streams: what the user should see of a constrained or text-mode answer
(the tool calls show up as tool blocks, not as JSON)."""

from __future__ import annotations

import json
import re

_OPENING = re.compile(r'^\s*\{\s*"thought"\s*:\s*"')
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[^u])")


class ThoughtStream:
    """Feed the raw content deltas; get back the newly readable text. Content that is not a JSON reply (prose)
    passes through unchanged."""

    def __init__(self) -> None:
        self.raw = ""
        self.mode = "start"  # start -> (prose | thought -> done)
        self.at = 0
        self.shown = ""

    def feed(self, delta: str) -> str:
        self.raw += delta
        if self.mode == "start":
            stripped = self.raw.lstrip()
            if not stripped:
                return ""
            if not stripped.startswith("{"):
                self.mode = "prose"
                return self.raw
            match = _OPENING.match(self.raw)
            if match is None:
                if '{"thought":"'.startswith(re.sub(r"\s", "", self.raw)):
                    return ""  # the opening is still arriving
                self.mode = "done"  # a JSON reply without a leading thought: nothing to show
                return ""
            self.mode, self.at = "thought", match.end()
        if self.mode == "prose":
            return delta
        if self.mode != "thought":
            return ""
        return self._thought()

    def _thought(self) -> str:
        out, i, raw = [], self.at, self.raw
        while i < len(raw):
            char = raw[i]
            if char == '"':
                self.mode = "done"
                i += 1
                break
            if char == "\\":
                match = _ESCAPE.match(raw, i)
                if match is None:
                    break  # an escape cut in the middle: wait for the rest
                try:
                    out.append(json.loads(f'"{match.group()}"'))
                except ValueError:
                    out.append(match.group())
                i = match.end()
                continue
            out.append(char)
            i += 1
        self.at = i
        return "".join(out)
