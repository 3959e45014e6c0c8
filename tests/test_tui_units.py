"""The TUI's parts on their own: the bridge's merging and approvals, the waterfall, keys, resize, replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_tui_snapshots import synthetic_run

from fastcode.core.events import ApprovalRequested, Event, TextDelta, ToolStarted
from fastcode.core.trace import build, format_table
from fastcode.frontends.tui.app import FastcodeApp, TaskInput
from fastcode.frontends.tui.bridge import Bridge, EngineEvent, merge_deltas
from fastcode.frontends.tui.latency import DECODE, TOOL, WAIT, waterfall
from fastcode.frontends.tui.replay import replay
from fastcode.frontends.tui.status import summarize_routes


def delta(seq: int, text: str, call_id: str = "1.1.1") -> TextDelta:
    return TextDelta(run_id="r", seq=seq, t=float(seq), call_id=call_id, text=text)


def test_the_bridge_folds_a_burst_of_deltas_into_the_waiting_message() -> None:
    posted: list[EngineEvent] = []
    bridge = Bridge(posted.append)
    for i in range(50):
        bridge.forward(delta(i, f"{i},"))
    assert len(posted) == 1 and posted[0].merged == 50
    assert posted[0].event.text == "".join(f"{i}," for i in range(50))  # type: ignore[attr-defined]
    assert posted[0].event.seq == 49

    bridge.forward(ToolStarted(run_id="r", seq=50, t=50.0, tool_id="a", step=1, name="read_file", arguments={}))
    bridge.forward(delta(51, "after the tool"))
    assert [type(m.event).__name__ for m in posted] == ["TextDelta", "ToolStarted", "TextDelta"]

    bridge.taken(posted[-1])  # the UI is handling it: the next delta needs a message of its own
    bridge.forward(delta(52, "next"))
    bridge.forward(delta(53, "other call", call_id="1.2.2"))
    assert [m.event.text for m in posted[2:]] == ["after the tool", "next", "other call"]  # type: ignore[attr-defined]


def test_merge_deltas_keeps_every_other_event_in_order() -> None:
    events: list[Event] = [delta(1, "a"), delta(2, "b"), *synthetic_run()[:2], delta(3, "c")]
    merged = merge_deltas(events)
    assert [e.type for e in merged] == ["text_delta", "run_started", "phase_started", "text_delta"]
    assert merged[0].text == "ab"  # type: ignore[attr-defined]


async def test_an_approval_waits_for_the_answer_and_nothing_else() -> None:
    bridge = Bridge(lambda message: None)
    request = ApprovalRequested(run_id="r", seq=1, t=0.0, tool_id="t1", name="run", arguments={"command": "ls"})
    waiting = asyncio.create_task(bridge.approve(request))
    await asyncio.sleep(0)
    assert bridge.waiting("t1") and not waiting.done()
    bridge.answer("t1", False)
    assert await waiting is False
    assert not bridge.waiting("t1")


def test_the_waterfall_draws_ttft_decode_and_overlapping_tools_with_the_trace_tables_figures() -> None:
    builder = build(synthetic_run())
    view = waterfall(builder, 100)
    rows = {row.id: line.plain for row, line in zip(builder.rows, view.rows, strict=True)}
    plan = rows["1.1.1"]
    assert WAIT in plan and DECODE in plan and plan.index(WAIT) < plan.index(DECODE)
    reads = [rows["r0"], rows["r1"]]
    columns = [{i for i, ch in enumerate(line) if ch == TOOL} for line in reads]
    assert columns[0] & columns[1], "parallel reads overlap on the time axis"
    t, table, panel = builder.totals(), format_table(builder), view.plain()
    shared = [f"model {t.model_s:.2f} s", f"tools {t.tool_s:.2f} s", f"other {t.other_s:.2f} s"]
    shared += [f"{t.model_calls} model calls", f"prompt {t.prompt_tokens} tokens, {t.cached_share:.0%} cached"]
    for figure in shared:
        assert figure in table and figure in panel
    assert f"total {t.wall_s:.2f} s" in table and f"wall {t.wall_s:.2f} s" in panel


def test_a_prefix_break_is_marked() -> None:
    events = synthetic_run()
    events = [e.model_copy(update={"prefix_break": True}) if e.type == "model_call_started" else e for e in events]
    lines = waterfall(build(events), 100).rows
    assert sum(line.plain.startswith("!") for line in lines) == 3


def test_routes_are_summarized_per_endpoint() -> None:
    same = dict.fromkeys(("plan", "act"), "default: m @ http://127.0.0.1:8080/v1")
    assert summarize_routes(same) == "m @ 127.0.0.1:8080/v1"
    mixed = {"plan": "big: gpt-4.1 @ https://api.openai.com/v1", "act": "default: m @ http://127.0.0.1:8080/v1"}
    assert summarize_routes(mixed) == "plan: gpt-4.1 @ api.openai.com/v1 · act: m @ 127.0.0.1:8080/v1"


async def test_keys_typed_outside_the_input_go_into_it_and_t_toggles_the_trace() -> None:
    app = FastcodeApp(clock=lambda: 0.0)
    async with app.run_test(size=(80, 24)) as pilot:
        app.transcript.focus()
        await pilot.pause()
        await pilot.press("t")
        assert app.has_class("-trace")
        await pilot.press("escape")
        assert not app.has_class("-trace")
        await pilot.press(*"fix", "ctrl+j", *"it")
        assert app.focused is app.query_one(TaskInput)
        assert app.task_input.text == "fix\nit"  # in the input, `t` is a letter


async def test_resizing_keeps_the_layout_whole() -> None:
    app = FastcodeApp(events=synthetic_run(), replay=True)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.has_class("-short") and app.has_class("-trace") and not app.transcript.display
        await pilot.resize_terminal(140, 50)
        await pilot.pause()
        assert not app.has_class("-short") and app.transcript.display and app.latency.display
        assert "wall 3.10 s" in app.latency.plain()
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert "wall 3.10 s" in app.latency.plain()


def test_replay_of_a_missing_trace_fails_with_one_line(tmp_path: Path, capsys) -> None:
    assert replay(tmp_path / "nope.jsonl") == 2
    assert "cannot read" in capsys.readouterr().err
