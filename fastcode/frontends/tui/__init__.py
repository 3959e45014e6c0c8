"""fastcode's terminal UI (Textual). Imported only when the UI opens, so the CLI stays fast without it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastcode.agent.engine import Session


def run_app(session: Session, task: str | None = None) -> int:
    """Open the app on `session`; start `task` at once when given. Returns the exit code (0 when the user quits)."""
    from fastcode.frontends.tui.app import FastcodeApp

    return FastcodeApp(session, task=task).run() or 0
