"""The transcript's building blocks: tool-call blocks, the plan checklist, and code/diff rendering.

Rendering helpers are pure (argument dicts in, Rich renderables out) so the approval modal shows an edit exactly
as the transcript does.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.widgets import Collapsible, Static

from fastcode.core.events import ToolFinished, ToolStarted

THEME = "ansi_dark"
OUTPUT_LINES = 12
OUTPUT_CHARS = 1500
WRITES = {"edit_file", "write_file"}
DECLINED = "error: the user declined"


def code(text: str, lexer: str) -> Syntax:
    return Syntax(text, lexer, theme=THEME, background_color="default", word_wrap=True)


def diff_view(diff: str) -> Syntax:
    """A unified diff with syntax highlighting."""
    return code(diff.rstrip("\n"), "diff")


def edit_diff(path: str, old: str, new: str) -> str:
    """The diff an `edit_file` call makes, from its arguments (no hunk headers: the snippet has no line numbers)."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{path}", f"b/{path}", lineterm="", n=2)
    return "\n".join(line for line in lines if not line.startswith("@@"))


def file_diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), f"a/{path}", f"b/{path}", lineterm="")
    return "\n".join(lines)


def file_lexer(path: str, text: str) -> str:
    return Syntax.guess_lexer(path, text) if path else "text"


def arguments_view(name: str, arguments: dict[str, Any] | str, root: Path | None = None) -> RenderableType:
    """What a tool call asks for: a diff for edits, the command for `run`, the arguments otherwise. With `root`
    (only before the call runs: the approval modal), edits are diffed against the file as it is now."""
    if not isinstance(arguments, dict):
        return Text(str(arguments)[:OUTPUT_CHARS], style="red")
    path = str(arguments.get("path", ""))
    current = _existing(root, path)
    if name == "edit_file" and "old" in arguments:
        old, new = str(arguments["old"]), str(arguments.get("new", ""))
        if current is not None and old and old in current:  # before it runs: the real change, in context
            return diff_view(file_diff(path, current, current.replace(old, new, 1)))
        return diff_view(edit_diff(path, old, new))
    if name == "write_file" and "content" in arguments:
        content = str(arguments["content"])
        if current is not None:
            return diff_view(file_diff(path, current, content) or f"(no change to {path})")
        return Group(Text(f"new file {path}", style="bold"), code(content, file_lexer(path, content)))
    if name == "run" and "command" in arguments:
        return code(f"$ {arguments['command']}", "bash")
    return Text("\n".join(f"{key}: {_short(value, 200)}" for key, value in arguments.items()), style="dim")


def _existing(root: Path | None, path: str) -> str | None:
    if root is None or not path:
        return None
    target = root / path
    try:
        return target.read_text(encoding="utf-8") if target.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(output: str, lines: int = OUTPUT_LINES, chars: int = OUTPUT_CHARS) -> str:
    """The first `lines` lines (at most `chars` characters) and a note of what was left out."""
    all_lines = output.rstrip("\n").splitlines()
    kept = "\n".join(all_lines[:lines])[:chars]
    hidden = len(all_lines) - kept.count("\n") - 1
    return kept + (f"\n… {hidden} more lines" if hidden > 0 else "")


def headline(name: str, arguments: dict[str, Any] | str) -> str:
    """The tool call's most telling argument, for its title."""
    if not isinstance(arguments, dict):
        return "(invalid arguments)"
    for key in ("path", "command", "pattern", "query", "summary"):
        if key in arguments:
            return _short(arguments[key], 48)
    return _short(next(iter(arguments.values()), ""), 48) if arguments else ""


class ToolBlock(Collapsible):
    """One tool call: name, arguments, status, duration, and a bounded view of the result."""

    def __init__(self, event: ToolStarted) -> None:
        self.tool_name, self.arguments = event.name, event.arguments
        self.status = "running"
        self.output = Static("", classes="tool-output")
        args = Static(arguments_view(event.name, event.arguments), classes="tool-args")
        super().__init__(args, self.output, title=self.heading(), collapsed=event.name not in WRITES)
        self.add_class("tool")

    def heading(self, ms: float | None = None) -> str:
        icon = {"running": "…", "ok": "✓", "error": "✗", "declined": "⊘", "approval": "?"}[self.status]
        tail = {"approval": " · awaiting approval", "declined": " · declined"}.get(self.status, "")
        timing = f" · {ms:.0f} ms" if ms is not None else ""
        return f"{icon} {self.tool_name} {headline(self.tool_name, self.arguments)}{timing}{tail}"

    def retitle(self, ms: float | None = None) -> None:
        self.title = self.heading(ms)

    def awaiting_approval(self) -> None:
        self.status = "approval"
        self.retitle()

    def finish(self, event: ToolFinished) -> None:
        self.status = "ok" if event.ok else "declined" if event.output.startswith(DECLINED) else "error"
        self.retitle(event.ms)
        self.set_class(not event.ok, "-error")
        output = event.output.partition("\n")[0] if event.ok and self.tool_name in WRITES else bounded(event.output)
        self.output.update(Text(output, style="" if event.ok else "red"))


class PlanChecklist(Static):
    """The plan as a checklist; item k ticks when step k finishes, all of them when the run finishes."""

    def __init__(self, items: list[str]) -> None:
        super().__init__(classes="plan")
        self.items, self.done, self.active = items, 0, True

    def on_mount(self) -> None:
        self._draw()

    def tick(self, steps_done: int) -> None:
        self.done = max(self.done, min(steps_done, len(self.items)))
        self._draw()

    def close(self, finished: bool) -> None:
        self.done, self.active = (len(self.items) if finished else self.done), False
        self._draw()

    def _draw(self) -> None:
        text = Text("plan\n", style="bold")
        for i, item in enumerate(self.items):
            if i < self.done:
                text.append("  ☑ ", "green").append(item + "\n", "dim")
            elif i == self.done and self.active:
                text.append("  ▸ ", "bold yellow").append(item + "\n", "bold")
            else:
                text.append(f"  ☐ {item}\n")
        text.rstrip()
        self.update(text)
