"""The `thought` of a JSON reply, as it streams: what the user should see of a constrained or text-mode answer
(the tool calls show up as tool blocks, not as JSON)."""

from __future__ import annotations

import json
import re

from fastcode.core.safe_text import clean

_OPENING = re.compile(r'^\s*\{\s*"thought"\s*:\s*"')
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[^u])")
_END = re.compile(r'(?<!\\)(?:\\\\)*"')


class ThoughtStream:
    """Feed the raw content deltas; get back the newly readable text. Content that is not a JSON reply (prose)
    passes through unchanged."""

    def __init__(self) -> None:
        self.raw = ""
        self.mode = "start"  # start -> prose | thought -> done
        self.start = 0
        self.shown = ""

    def feed(self, delta: str) -> str:
        self.raw += delta
        if self.mode == "start":
            stripped = self.raw.lstrip()
            if not stripped:
                return ""
            if not stripped.startswith("{"):
                self.mode = "prose"
                return clean(self.raw)
            match = _OPENING.match(self.raw)
            if match is None:
                if '{"thought":"'.startswith(re.sub(r"\s", "", self.raw)):
                    return ""  # the opening is still arriving
                self.mode = "done"  # a JSON reply without a leading thought: nothing to show
                return ""
            self.mode, self.start = "thought", match.end()
        if self.mode == "prose":
            return clean(delta)
        return self._thought() if self.mode == "thought" else ""

    def _thought(self) -> str:
        body = self.raw[self.start :]
        if end := _END.search(body):
            body, self.mode = body[: end.end() - 1], "done"
        else:  # hold back an escape still arriving (`\`, `\u12`)
            cut = body.rfind("\\")
            if cut != -1 and not _ESCAPE.match(body, cut):
                body = body[:cut]
        try:
            text = json.loads(f'"{body}"')
        except ValueError:
            return ""
        if self.mode == "thought" and text and "\ud800" <= text[-1] <= "\udbff":
            text = text[:-1]  # the low half of this character has not arrived yet
        if len(text) <= len(self.shown):
            return ""
        new, self.shown = text[len(self.shown) :], text
        return clean(new)
