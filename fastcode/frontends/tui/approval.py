"""The approval modal: shows the command or the diff a tool call wants, and returns the user's answer.

The engine is not blocked by it: only the tool call that asked awaits the answer (an asyncio Future the bridge
holds); the transcript, the trace panel and the rest of the app keep updating underneath.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from fastcode.core.events import ApprovalRequested
from fastcode.frontends.tui.blocks import arguments_view, headline

QUESTION = {"run": "Run this command?", "edit_file": "Apply this edit?", "write_file": "Write this file?"}


class ApprovalScreen(ModalScreen[bool]):
    """y / Enter allows, n / Escape declines."""

    BINDINGS: ClassVar = [
        Binding("y", "answer(True)", "allow"),
        Binding("n", "answer(False)", "decline"),
        Binding("escape", "answer(False)", "decline", show=False),
    ]

    def __init__(self, request: ApprovalRequested, root: Path | None = None) -> None:
        super().__init__(classes="approval")
        self.request, self.root = request, root

    def compose(self) -> ComposeResult:
        request = self.request
        with Vertical(id="approval-box") as box:
            box.border_title = f"approval · {request.name} {headline(request.name, request.arguments)}"
            yield Static(Text(QUESTION.get(request.name, f"Allow {request.name}?"), style="bold"))
            with VerticalScroll(id="approval-preview"):
                yield Static(arguments_view(request.name, request.arguments, self.root))
            with Horizontal(id="approval-buttons"):
                yield Button("Allow (y)", variant="success", id="allow")
                yield Button("Decline (n)", variant="error", id="decline")

    def on_mount(self) -> None:
        self.query_one("#allow", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "allow")

    def action_answer(self, approved: bool) -> None:
        self.dismiss(approved)
