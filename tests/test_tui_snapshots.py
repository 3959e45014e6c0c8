"""SVG snapshots of the main screens (pytest-textual-snapshot; `pytest --snapshot-update` re-records them).

Each screen is built from a fixed, synthetic event stream with fixed times and a frozen clock, so nothing depends
on how fast the machine is: no wall-clock times, no run ids, no paths on screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fastcode.agent.engine import Session
from fastcode.core import events as ev
from fastcode.core.config import load_settings
from fastcode.core.events import (
    Event,
    FirstToken,
    ModelCallFinished,
    ModelCallStarted,
    PhaseFinished,
    PhaseStarted,
    PlanProposed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    TextDelta,
    ToolCallSpec,
    ToolFinished,
    ToolStarted,
)
from fastcode.frontends.tui.app import FastcodeApp

T0 = 100.0
ROUTE = "default: qwen2.5-coder @ http://127.0.0.1:8080/v1"
PLAN = "1. Read the failing test and moving_sum.\n2. Fix the range bound.\n3. Run the tests."
OLD, NEW = "range(len(values) - window)", "range(len(values) - window + 1)"
DIFF = """diff --git a/mathutils/stats.py b/mathutils/stats.py
--- a/mathutils/stats.py
+++ b/mathutils/stats.py
@@ -5,7 +5,7 @@ def moving_sum(values: list[float], window: int) -> list[float]:
-    return [sum(values[i : i + window]) for i in range(len(values) - window)]
+    return [sum(values[i : i + window]) for i in range(len(values) - window + 1)]
"""


class Stream:
    """Builds events with consecutive sequence numbers at given times (seconds after T0)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, cls: type[Event], at: float, **fields: Any) -> None:
        self.events.append(cls(run_id="snapshot-run", seq=len(self.events) + 1, t=T0 + at, **fields))

    def call(self, step: int, route: str, start: float, first: float, end: float, text: str = "", **usage: Any) -> str:
        call_id = f"1.{step}.{step}"
        common = {"call_id": call_id, "step": step, "route": route, "profile": "default", "model": "qwen2.5-coder"}
        self(StepStarted, start, step=step, route=route)
        self(ModelCallStarted, start, **common, base_url="http://127.0.0.1:8080/v1")
        ttft = first - start
        self(FirstToken, first, call_id=call_id, ttft_ms=round(ttft * 1000, 1))
        pieces = [text[i : i + 12] for i in range(0, len(text), 12)]
        for k, piece in enumerate(pieces):
            self(TextDelta, start + ttft + (end - start - ttft) * k / max(1, len(pieces)), call_id=call_id, text=piece)
        decode_ms = (end - start - ttft) * 1000
        tokens = usage.pop("completion_tokens", 40)
        self(
            ModelCallFinished,
            end,
            **common,
            ttft_ms=round(ttft * 1000, 1),
            decode_ms=round(decode_ms, 1),
            total_ms=round((end - start) * 1000, 1),
            decode_tps=round(tokens / decode_ms * 1000, 1),
            completion_tokens=tokens,
            content=text,
            **usage,
        )
        return call_id


def synthetic_run() -> list[Event]:
    """A four-step fix: gather, plan + two parallel reads, an edit + tests, a run, and finish."""
    s = Stream()
    s(RunStarted, 0.0, task="fix the failing test", repo="/repo", started_at="2026-01-01T00:00:00+00:00",
      routes=dict.fromkeys(("plan", "act", "edit", "verify", "escalate"), ROUTE))  # fmt: skip
    s(PhaseStarted, 0.001, name="gather")
    s(PhaseFinished, 0.180, name="gather", ms=179.0, detail="4 sources")
    s.call(1, "plan", 0.20, 0.54, 1.10, PLAN, prompt_tokens=1324, cached_tokens=0)
    s(PlanProposed, 1.101, items=["Read the failing test and moving_sum.", "Fix the range bound.", "Run the tests."])
    for i, path in enumerate(("mathutils/stats.py", "tests/test_stats.py")):
        s(ToolStarted, 1.102 + i * 0.001, tool_id=f"r{i}", step=1, name="read_file", arguments={"path": path})
    s(ToolFinished, 1.140, tool_id="r0", step=1, name="read_file", ok=True, output="   1| ...", ms=38.0)
    s(ToolFinished, 1.150, tool_id="r1", step=1, name="read_file", ok=True, output="   1| ...", ms=47.0)
    s(StepFinished, 1.151, step=1, ms=951.0)
    edit = {"path": "mathutils/stats.py", "old": OLD, "new": NEW}
    calls = [ToolCallSpec(id="e1", name="edit_file", arguments="{}")]
    s.call(2, "edit", 1.16, 1.42, 1.70, prompt_tokens=1743, cached_tokens=1324, completion_tokens=27, tool_calls=calls)
    s(ToolStarted, 1.701, tool_id="e1", step=2, name="edit_file", arguments=edit)
    s(ToolFinished, 1.712, tool_id="e1", step=2, name="edit_file", ok=True, output="edited: 1 replacement", ms=11.0)
    s(ev.TestsRun, 2.60, command="python -m pytest -x -q", exit_code=0, passed=True, ms=880.0, output_tail="4 passed")
    s(StepFinished, 2.601, step=2, ms=1441.0)
    s.call(3, "verify", 2.61, 2.90, 3.05, "The tests pass.", prompt_tokens=1983, cached_tokens=1743)
    s(ToolStarted, 3.051, tool_id="f1", step=3, name="finish", arguments={"summary": "Fixed the off-by-one."})
    s(ToolFinished, 3.052, tool_id="f1", step=3, name="finish", ok=True, output="Fixed the off-by-one.", ms=0.1)
    s(StepFinished, 3.053, step=3, ms=443.0)
    s(RunFinished, 3.10, status="finished", summary="Fixed the off-by-one in `moving_sum`.", steps=3,
      model_calls=3, wall_s=3.1, diff=DIFF)  # fmt: skip
    return s.events


def mid_run() -> list[Event]:
    """The same run cut while step 3's answer streams in."""
    events = synthetic_run()
    cut = next(i for i, e in enumerate(events) if isinstance(e, TextDelta) and e.text.startswith("The t"))
    return events[: cut + 1]


@pytest.fixture
def session(tmp_path: Path, isolated_env) -> Session:
    flags = {"models.default.base_url": "http://127.0.0.1:8080/v1", "models.default.model": "qwen2.5-coder"}
    return Session(load_settings(tmp_path, flags=flags).settings, tmp_path)


def app_with(session: Session, events: list[Event], now: float) -> FastcodeApp:
    """The live app (input and all), fed `events` after it starts, its clock frozen at T0 + now."""
    app = FastcodeApp(session, clock=lambda: T0 + now)

    async def feed(pilot) -> None:  # type: ignore[no-untyped-def]
        for event in events:
            await app.apply(event)
        await pilot.pause()

    app.feed = feed  # type: ignore[attr-defined]
    return app


def test_empty(snap_compare, session) -> None:
    assert snap_compare(FastcodeApp(session, clock=lambda: T0), terminal_size=(80, 24))


def test_mid_run(snap_compare, session) -> None:
    app = app_with(session, mid_run(), now=2.95)
    assert snap_compare(app, terminal_size=(80, 24), run_before=app.feed)


def test_finished_with_the_trace_panel(snap_compare, session) -> None:
    app = app_with(session, synthetic_run(), now=3.1)
    assert snap_compare(app, terminal_size=(80, 24), run_before=app.feed, press=["ctrl+t"])


def test_finished_with_the_trace_panel_on_a_big_terminal(snap_compare, session) -> None:
    app = app_with(session, synthetic_run(), now=3.1)
    assert snap_compare(app, terminal_size=(120, 40), run_before=app.feed, press=["ctrl+t"])


def test_replay_opens_the_panel(snap_compare) -> None:
    assert snap_compare(FastcodeApp(events=synthetic_run(), replay=True), terminal_size=(100, 30))


def test_approval_modal(snap_compare, session) -> None:
    from fastcode.core.events import ApprovalRequested
    from fastcode.frontends.tui.approval import ApprovalScreen

    events = synthetic_run()
    cut = next(i for i, e in enumerate(events) if isinstance(e, ToolStarted) and e.name == "edit_file")
    edit = events[cut]
    assert isinstance(edit, ToolStarted) and isinstance(edit.arguments, dict)
    request = ApprovalRequested(
        run_id="snapshot-run", seq=999, t=edit.t, tool_id=edit.tool_id, name="edit_file", arguments=edit.arguments
    )
    app = app_with(session, [*events[: cut + 1], request], now=1.8)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await app.feed(pilot)
        await app.push_screen(ApprovalScreen(request))

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
