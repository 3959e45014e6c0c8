"""`fastcode trace show RUN --tui`: a recorded run in the app, transcript rebuilt and the latency panel open."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from fastcode.core.errors import fail
from fastcode.core.trace import read_trace
from fastcode.frontends.tui.bridge import merge_deltas


def replay(trace_path: Path) -> int:
    """Open the trace at `trace_path` read-only; the same panel the live run shows. Returns the exit code."""
    try:
        events = read_trace(trace_path)
    except (OSError, ValueError, ValidationError) as exc:
        return fail(f"cannot read {trace_path}: {exc}")
    from fastcode.frontends.tui.app import FastcodeApp

    return FastcodeApp(events=merge_deltas(events), replay=True).run() or 0
