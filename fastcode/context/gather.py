"""Context gathered before the first model call (filled in by the speed work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastcode.emitter import Emitter
    from fastcode.engine import Session


async def gather_context(session: Session, task: str, emit: Emitter) -> str:
    return ""
