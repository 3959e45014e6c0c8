"""The TUI driven by Pilot through whole runs against the scripted server: streaming, tools, diff, the latency panel
against the trace file, approvals, Ctrl+C, follow-ups. Waits are on conditions (with a generous cap), never timed."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

from conftest import git, load_script
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from fastcode.agent.engine import Session
from fastcode.core.config import load_settings
from fastcode.core.events import Event, ModelCallFinished
from fastcode.core.trace import build, read_trace
from fastcode.frontends.tui.app import FastcodeApp, TaskInput
from fastcode.frontends.tui.approval import ApprovalScreen
from fastcode.frontends.tui.blocks import ToolBlock
from fastcode.frontends.tui.latency import model_figures, row_label, span_figures, totals_lines
from fastcode.testing import ScriptedServer
from fastcode.testing.scripted_server import Latency

FAST = ["context.run_tests=false", "agent.auto_test=false", "agent.warmup=never"]
FINISH = {"name": "finish", "arguments": {"summary": "done"}}
FIXED_LINE = "+    return [sum(values[i : i + window]) for i in range(len(values) - window + 1)]"


class RecordingApp(FastcodeApp):
    """Remembers what the transcript showed of a call's text at the moment its ModelCallFinished arrived."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.shown_before_finish: dict[str, str] = {}

    async def apply(self, event: Event) -> None:
        if isinstance(event, ModelCallFinished):
            self.shown_before_finish[event.call_id] = self.transcript.text_of(event.call_id)
        await super().apply(event)


def make_app(repo: Path, server: ScriptedServer, *, approval: str = "full-auto", task: str | None = None):
    flags = {"models.default.base_url": server.base_url, "models.default.model": "m", "agent.approval": approval}
    settings = load_settings(repo, overrides=FAST, flags=flags).settings
    return RecordingApp(Session(settings, repo), task=task)


async def until(pilot: Pilot, condition: Callable[[], object], what: str, cap_s: float = 90) -> None:
    """Let the app run until `condition()` holds; the cap only turns a hang into a failure."""
    deadline = time.monotonic() + cap_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await pilot.pause(0.02)


def finished_runs(app: FastcodeApp) -> int:
    return sum(1 for _ in app.query(".run-end"))


def plain(renderable: object) -> str:
    console = Console(width=160, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def statics_text(root) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(plain(w.content) for w in root.query(Static) if not isinstance(w.content, str) or w.content)


def approval_shown(app: FastcodeApp) -> bool:
    """The approval screen is up and its preview mounted (a pushed screen composes its children a moment later)."""
    return isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#approval-preview Static"))


def trace_file(repo: Path, run_id: str) -> Path:
    return repo / ".fastcode" / "runs" / run_id / "trace.jsonl"


async def submit(pilot: Pilot, text: str) -> None:
    pilot.app.query_one(TaskInput).focus()
    await pilot.press(*text)
    await pilot.press("enter")


async def test_a_whole_run_streams_tools_diff_and_a_trace_panel_matching_the_file(sample_repo, isolated_env, scripted):
    server = scripted(load_script("sample_fix.json"), latency=Latency(decode_tps=400))
    app = make_app(sample_repo, server)
    async with app.run_test(size=(100, 40)) as pilot:
        await submit(pilot, "fix the failing test")
        await until(pilot, lambda: finished_runs(app) == 1, "the run to finish")
        assert app.trace.finished is not None and app.trace.finished.status == "finished"

        # Streaming: the text was on screen before its call finished.
        last_call = [r for r in app.trace.rows if r.kind == "model"][-1].id
        assert app.shown_before_finish[last_call] == "The tests pass."
        # The plan became a checklist, all ticked.
        assert "☑ Fix the range bound." in statics_text(app.query_one(".plan").parent)

        blocks = list(app.query(ToolBlock))
        assert [b.tool_name for b in blocks] == ["read_file", "read_file", "edit_file", "run", "finish"]
        assert all(b.status == "ok" and "ms" in str(b.title) for b in blocks)
        assert blocks[0].collapsed  # reads start collapsed, edits open
        assert blocks[2].collapsed is False
        edit = statics_text(blocks[2])
        assert "-range(len(values) - window)" in edit and "+range(len(values) - window + 1)" in edit
        assert FIXED_LINE in plain(app.query_one(".diff", Static).content)

        # The latency panel: rows and totals equal to the trace file's, built through TraceBuilder.
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.latency.display
        recorded = build(read_trace(trace_file(sample_repo, app.trace.finished.run_id)))
        assert app.trace.totals() == recorded.totals()
        lines = app.latency.plain().splitlines()
        assert len(recorded.rows) >= 9 and [r.kind for r in recorded.rows].count("model") == 4
        for line, row in zip(lines[1:], recorded.rows, strict=False):
            figures = model_figures(row) if row.kind == "model" else span_figures(row)
            assert line.endswith(figures), (line, figures)
            assert row_label(row).strip()[:8] in line
        for total in totals_lines(recorded.totals()):
            assert total in lines
        await pilot.press("escape")
        await pilot.pause()
        assert not app.has_class("-trace")


async def test_suggest_mode_asks_and_obeys_one_yes_and_one_no(sample_repo, isolated_env, scripted):
    server = scripted(load_script("sample_fix.json"))
    app = make_app(sample_repo, server, approval="suggest", task="fix the failing test")
    async with app.run_test(size=(80, 24)) as pilot:
        # Gathering's test run executes the repository's code: asked for first, like any command.
        await until(pilot, lambda: approval_shown(app), "the gathering test run's approval")
        assert app.screen.request.name == "run" and app.screen.request.tool_id == "tests"
        await pilot.press("y")

        await until(pilot, lambda: approval_shown(app) and app.screen.request.name == "edit_file", "the edit")
        assert app.screen.request.name == "edit_file"
        assert FIXED_LINE in statics_text(app.screen)  # the edit in the file's context
        assert app.status.state == "awaiting approval"
        await pilot.press("y")

        await until(pilot, lambda: approval_shown(app) and app.screen.request.name == "run", "run")
        assert "$ python -m pytest -q" in statics_text(app.screen)
        await pilot.press("n")

        await until(pilot, lambda: finished_runs(app) == 1, "the run to finish")
        statuses = {b.tool_name: b.status for b in app.query(ToolBlock)}
        assert statuses["edit_file"] == "ok" and statuses["run"] == "declined"
    assert "window + 1" in (sample_repo / "mathutils/stats.py").read_text()


async def test_ctrl_c_interrupts_mid_call_and_the_app_stays(sample_repo, isolated_env, scripted):
    script = {"turns": [{"content": "never arrives", "tool_calls": [FINISH]}]}
    server = scripted(script, latency=Latency(ttft_ms=60_000))
    app = make_app(sample_repo, server, task="wait for me")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: any(r.kind == "model" and r.end is None for r in app.trace.rows), "the model call")
        await pilot.press("t")  # during a run the transcript has focus: `t` opens the live trace
        assert app.has_class("-trace") and " 1 plan·m" in app.latency.plain()
        await pilot.press("ctrl+c")
        await until(pilot, lambda: app.trace.finished is not None, "the run to end")
        assert app.trace.finished.status == "interrupted" and app.trace.finished.exit_code == 130
        assert app.is_running and not app.running
        assert app.status.state == "interrupted"
        await until(pilot, lambda: app.focused is app.query_one(TaskInput), "the input to get focus back")
        events = read_trace(trace_file(sample_repo, app.trace.finished.run_id))
        assert events[-1].type == "run_finished" and events[-1].status == "interrupted"
    assert git(sample_repo, "status", "--porcelain") == ""


async def test_a_follow_up_continues_the_conversation_and_its_prefix(sample_repo, isolated_env, scripted):
    script = load_script("sample_fix.json")
    script["turns"].append({"content": "It was an off-by-one.", "tool_calls": [FINISH]})
    server = scripted(script)
    app = make_app(sample_repo, server)
    async with app.run_test(size=(80, 24)) as pilot:
        await submit(pilot, "fix the failing test")
        await until(pilot, lambda: finished_runs(app) == 1, "the first run")
        await submit(pilot, "what was wrong?")
        await until(pilot, lambda: finished_runs(app) == 2, "the follow-up")
        assert app.trace.started is not None and app.trace.started.turn == 2
        assert "❯ (turn 2) what was wrong?" in statics_text(app.transcript)
    requests = [r for r in server.requests if r.get("max_tokens") != 1]
    assert len(requests) == 5
    first_run_last, follow_up_first = requests[3]["messages"], requests[4]["messages"]
    assert follow_up_first[: len(first_run_last)] == first_run_last
    assert len(follow_up_first) > len(first_run_last)
