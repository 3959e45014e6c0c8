"""A run's conversation on disk, so a later `fastcode exec --continue` / `--resume RUN` picks it up where it stopped.

Each run writes `.fastcode/runs/<run-id>/conversation.json`: the messages exactly as the next request would send them
(the system prompt and every turn, byte for byte, so the server's prompt cache still holds the prefix), the turn
count and the session id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "conversation.json"


class ResumeError(Exception):
    """The run to continue has no readable conversation."""


@dataclass(frozen=True)
class Conversation:
    session_id: str
    turn: int
    messages: list[dict[str, Any]]


def save(folder: Path, conversation: Conversation) -> None:
    """Write atomically; a failure is not the run's failure (it only means it cannot be continued)."""
    data = {"session_id": conversation.session_id, "turn": conversation.turn, "messages": conversation.messages}
    tmp = folder / f"{FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, folder / FILE)
    except OSError:
        tmp.unlink(missing_ok=True)


def load(folder: Path) -> Conversation:
    path = folder / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResumeError(f"run {folder.name} kept no conversation (it was made by an older fastcode)") from None
    except (OSError, ValueError) as exc:
        raise ResumeError(f"cannot read {path}: {exc}") from None
    messages = data.get("messages") if isinstance(data, dict) else None
    valid = isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m for m in messages)
    if not valid or not isinstance(data.get("turn"), int):
        raise ResumeError(f"{path} is not a fastcode conversation")
    return Conversation(str(data.get("session_id") or folder.name), data["turn"], messages)
