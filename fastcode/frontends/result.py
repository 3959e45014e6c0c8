"""The `result` object that ends `fastcode exec --json`: what automation reads, built from the event stream.

Stable field names (README documents them): `type`, `status`, `is_error`, `error` ({kind, message} or null),
`summary`, `steps`, `model_calls`, `usage` ({prompt_tokens, cached_tokens, completion_tokens}, warm-ups included),
`duration_ms`, `wall_s`, `run_id`, `session_id`, `exit_code`, `diff`, `candidates`, `winner`.
"""

from __future__ import annotations

from typing import Any

from fastcode.core.events import ErrorEvent, Event, ModelCallFinished, RunFinished, RunStarted

NOT_ERRORS = frozenset({"stuck"})
"""Error events that describe how a run ended rather than a failure (a stuck run ends with status "stuck")."""


class ResultBuilder:
    """Feed it every event of one run; `result()` is the object once RunFinished has arrived."""

    def __init__(self) -> None:
        self.session_id = ""
        self.usage: dict[str, int] = {}
        self.error: dict[str, str] | None = None
        self._reset()

    def _reset(self) -> None:
        self.usage = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
        self.error = None

    def __call__(self, event: Event) -> dict[str, Any] | None:
        match event:
            case RunStarted():
                self._reset()  # a follow-up turn counts afresh
                self.session_id = event.session_id or event.run_id
            case ModelCallFinished():
                self.usage["prompt_tokens"] += event.prompt_tokens
                self.usage["cached_tokens"] += event.cached_tokens
                self.usage["completion_tokens"] += event.completion_tokens
            case ErrorEvent() if event.kind not in NOT_ERRORS:
                self.error = {"kind": event.kind, "message": event.message}
            case RunFinished():
                return self.result(event)
        return None

    def result(self, finished: RunFinished) -> dict[str, Any]:
        return {
            "type": "result",
            "status": finished.status,
            "is_error": finished.status == "error",
            "error": self.error if finished.status == "error" else None,
            "summary": finished.summary,
            "steps": finished.steps,
            "model_calls": finished.model_calls,
            "usage": dict(self.usage),
            "duration_ms": round(finished.wall_s * 1000),
            "wall_s": finished.wall_s,
            "run_id": finished.run_id,
            "session_id": self.session_id or finished.run_id,
            "exit_code": finished.exit_code,
            "diff": finished.diff,
            "candidates": finished.candidates,
            "winner": finished.winner,
        }
