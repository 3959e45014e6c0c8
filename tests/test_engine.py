"""The engine's event stream against the scripted server: ordering, pairing, bad tool calls, cache discipline."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from conftest import load_script

from fastcode.agent.engine import Session
from fastcode.core.config import load_settings
from fastcode.core.events import Event, parse_event
from fastcode.testing.scripted_server import Latency


def _session(repo: Path, base_url: str, *overrides: str) -> Session:
    loaded = load_settings(
        repo,
        overrides=[f"models.default.base_url={base_url!r}", "models.default.model='m'", *overrides],
    )
    return Session(loaded.settings, repo)


async def _collect(session: Session, task: str) -> list[Event]:
    return [event async for event in session.run(task)]


async def test_event_stream_is_ordered_paired_and_traced(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))  # reads, then edits: a trajectory without edit-first
    events = await _collect(_session(sample_repo, server.base_url, "agent.edit_first='never'"), "fix the failing test")

    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    assert len({e.run_id for e in events}) == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(a.t <= b.t for a, b in itertools.pairwise(events))
    for start, end, key in (
        ("model_call_started", "model_call_finished", "call_id"),
        ("tool_started", "tool_finished", "tool_id"),
        ("step_started", "step_finished", "step"),
    ):
        opened = [getattr(e, key) for e in events if e.type == start]
        closed = [getattr(e, key) for e in events if e.type == end]
        assert opened and sorted(opened) == sorted(closed)
    assert events[-1].status == "finished" and events[-1].exit_code == 0
    plan = next(e for e in events if e.type == "plan")
    assert plan.items[0].startswith("Read the failing test")

    trace = Path(sample_repo / ".fastcode/runs" / events[0].run_id / "trace.jsonl")
    assert [parse_event(line) for line in trace.read_text().splitlines()] == events


@pytest.mark.parametrize(("mode", "stable"), [("native", "tools"), ("constrained", "response_format")])
async def test_system_prompt_and_tools_are_byte_identical_and_history_append_only(
    sample_repo, isolated_env, scripted, mode, stable
) -> None:
    server = scripted(load_script("sample_fix.json"))
    # (edit-first would narrow the first call's schema: the prompt stays the same, but not the response_format)
    session = _session(sample_repo, server.base_url, f"models.default.tool_mode={mode!r}", "agent.edit_first='never'")
    await _collect(session, "fix the failing test")
    bodies = [r for r in server.requests if r.get("max_tokens") != 1]
    assert len(bodies) == 4
    first = bodies[0]
    for later in bodies[1:]:
        assert json.dumps(later[stable]) == json.dumps(first[stable])
        assert later["messages"][: len(first["messages"])] == first["messages"]
    for earlier, later in itertools.pairwise(bodies):
        assert later["messages"][: len(earlier["messages"])] == earlier["messages"]
    assert bodies[0]["stream"] is True and bodies[0]["stream_options"] == {"include_usage": True}
    if mode == "native":
        assert bodies[0]["tool_choice"] == "auto"


async def test_bad_tool_calls_become_tool_errors_not_crashes(tmp_path, isolated_env, scripted) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    script = {
        "turns": [
            {
                "content": "1. try things",
                "tool_calls": [
                    {"name": "no_such_tool", "arguments": {}},
                    {"name": "read_file", "arguments": "{not json"},
                    {"name": "read_file", "arguments": {}},
                    {"name": "read_file", "arguments": {"path": "../outside.txt"}},
                    {"name": "read_file", "arguments": {"path": "a.txt"}},
                ],
            },
            {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
        ]
    }
    server = scripted(script)
    events = await _collect(_session(tmp_path, server.base_url, "models.default.tool_mode='native'"), "look around")
    by_id = {e.tool_id: e for e in events if e.type == "tool_finished"}
    first_call = next(e for e in events if e.type == "model_call_finished" and not e.warmup)
    finished = [by_id[call.id] for call in first_call.tool_calls]
    assert [e.ok for e in finished[:5]] == [False, False, False, False, True]
    assert "unknown tool 'no_such_tool'" in finished[0].output
    assert "not valid JSON" in finished[1].output
    assert "path" in finished[2].output
    assert "outside the repository" in finished[3].output
    assert "hello" in finished[4].output
    assert events[-1].status == "finished"
    # Every call of the turn was answered, in order, before the next request.
    second = [r for r in server.requests if r.get("max_tokens") != 1][1]
    answered = [m["tool_call_id"] for m in second["messages"] if m["role"] == "tool"]
    asked = [c["id"] for m in second["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert answered == asked and len(asked) == 5


async def test_independent_reads_run_at_once(tmp_path, isolated_env, scripted) -> None:
    for name in "abcd":
        (tmp_path / f"{name}.py").write_text(f"def {name}():\n    return 1\n")
    script = {
        "turns": [
            {"tool_calls": [{"name": "search", "arguments": {"pattern": "def", "glob": f"{n}.py"}} for n in "abcd"]},
            {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]},
        ]
    }
    server = scripted(script)
    events = await _collect(_session(tmp_path, server.base_url), "find defs")
    starts = [e.t for e in events if e.type == "tool_started" and e.name == "search"]
    ends = [e.t for e in events if e.type == "tool_finished" and e.name == "search"]
    assert len(starts) == 4 == len(ends)
    # They overlap (reads may start while the reply still streams, so the first can end before the last starts).
    running = peak = 0
    for e in events:
        if e.type in ("tool_started", "tool_finished") and e.name == "search":
            running += 1 if e.type == "tool_started" else -1
            peak = max(peak, running)
    assert peak >= 2


async def test_text_only_reply_gets_a_nudge_and_max_steps_stops(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"content": "I think it is fine."}, {"content": "Still fine."}]})
    events = await _collect(_session(tmp_path, server.base_url, "agent.max_steps=2"), "do it")
    assert events[-1].status == "max_steps" and events[-1].exit_code == 1
    second = [r for r in server.requests if r.get("max_tokens") != 1][1]
    assert "called no tool" in second["messages"][-1]["content"]


async def test_interrupt_ends_the_run_cleanly(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"content": "slow"}]}, latency=Latency(ttft_ms=5000))
    session = _session(tmp_path, server.base_url)
    events: list[Event] = []

    async def consume() -> None:
        async for event in session.run("wait"):
            events.append(event)
            if event.type == "model_call_started":
                session.interrupt()

    await asyncio.wait_for(consume(), 10)
    assert events[-1].type == "run_finished"
    assert events[-1].status == "interrupted" and events[-1].exit_code == 130


async def test_a_follow_up_after_an_interrupted_tool_turn_stays_valid(tmp_path, isolated_env, scripted) -> None:
    script = {
        "turns": [
            {"tool_calls": [{"name": "run", "arguments": {"command": "sleep 30"}}]},
            {"tool_calls": [{"name": "finish", "arguments": {"summary": "second"}}]},
        ]
    }
    server = scripted(script)
    session = _session(tmp_path, server.base_url, "models.default.tool_mode='native'")
    first: list[Event] = []
    async for event in session.run("slow"):
        first.append(event)
        if event.type == "tool_started":
            session.interrupt()
    assert first[-1].status == "interrupted"
    second = await _collect(session, "now finish")
    assert second[-1].status == "finished" and second[-1].summary == "second"
    follow_up = [r for r in server.requests if r.get("max_tokens") != 1][-1]
    tool_msgs = [m for m in follow_up["messages"] if m["role"] == "tool"]
    assert len(tool_msgs) == 1 and "interrupted" in tool_msgs[0]["content"]
    assert "Follow-up task" in follow_up["messages"][-1]["content"]
