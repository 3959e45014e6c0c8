"""Speed mechanics against the scripted server: context before the first call, warm-up, routes without prefix
breaks, escalation, the engine's own test run, cache hints. (Figures come from `fastcode bench`, not from here.)"""

from __future__ import annotations

from pathlib import Path

from conftest import load_script

from fastcode.agent.engine import Session
from fastcode.agent.prefix import PrefixTracker
from fastcode.bench.case_study import CASE_SCRIPT, make_case_repo
from fastcode.core.config import load_settings
from fastcode.core.events import Event
from fastcode.core.trace import build


def _session(repo: Path, *overrides: str) -> Session:
    return Session(load_settings(repo, overrides=list(overrides)).settings, repo)


def _endpoint(url: str, model: str = "m", profile: str = "default") -> list[str]:
    return [f"models.{profile}.base_url={url!r}", f"models.{profile}.model={model!r}"]


async def _collect(session: Session, task: str) -> list[Event]:
    return [event async for event in session.run(task)]


def _real(requests: list[dict]) -> list[dict]:
    return [r for r in requests if r.get("max_tokens") != 1]


async def test_first_call_already_sees_the_failure_and_the_code(tmp_path, isolated_env, scripted) -> None:
    repo = make_case_repo(tmp_path / "case")
    server = scripted(CASE_SCRIPT)
    events = await _collect(_session(repo, *_endpoint(server.base_url)), "fix the failing test")
    first_user = _real(server.requests)[0]["messages"][1]["content"]
    assert "assert [3] == [3, 5, 7]" in first_user or "assert moving_sum" in first_user
    assert "def moving_sum(values, window):" in first_user  # the function named on the failing line
    assert "test_stats.py" in first_user
    assert ".fastcode" not in first_user  # fastcode's own state never leaks into the context
    phases = {e.name for e in events if e.type == "phase_finished"}
    assert {"gather", "gather.git", "gather.map", "gather.search", "gather.tests"} <= phases
    # One model call: edit + finish. The edit passed the failing test, then the whole command, in a scratch copy
    # (the search's first candidate); in the tree the whole command alone confirms it, then the run accepts.
    calls = [e for e in events if e.type == "model_call_finished" and not e.warmup]
    assert len(calls) == 1 and [c.route for c in calls] == ["plan"]
    assert [(c.index, c.result) for c in events if c.type == "candidate_tested"] == [(1, "passed")]
    runs = [(e.passed, e.step) for e in events if e.type == "tests_run"]
    assert runs == [(False, 0), (True, 1)]  # gathering's run, then the confirmation after step 1's edit
    assert [r.step for r in build(events).rows if r.kind == "tests"] == [0, 1]  # so their spans say it too
    assert events[-1].status == "finished"


async def test_warm_up_carries_the_exact_prefix_before_the_first_call(tmp_path, isolated_env, scripted) -> None:
    repo = make_case_repo(tmp_path / "case")
    server = scripted(CASE_SCRIPT)
    await _collect(_session(repo, *_endpoint(server.base_url)), "fix the failing test")
    warm, first = server.requests[0], _real(server.requests)[0]
    assert warm["max_tokens"] == 1 and server.requests.index(first) > 0
    assert warm.get("tools") == first.get("tools") and warm["messages"][0] == first["messages"][0]
    assert warm.get("cache_prompt") is True and first.get("cache_prompt") is True  # a local server: llama.cpp hint


async def test_warmup_never_sends_none(tmp_path, isolated_env, scripted) -> None:
    repo = make_case_repo(tmp_path / "case")
    server = scripted(CASE_SCRIPT)
    await _collect(_session(repo, *_endpoint(server.base_url), "agent.warmup='never'"), "fix the failing test")
    assert all(r.get("max_tokens") != 1 for r in server.requests)


async def test_two_routes_on_two_models_keep_every_prefix(sample_repo, isolated_env, scripted) -> None:
    script = load_script("sample_fix.json")
    planner = scripted({"model": "planner", "turns": script["turns"][:1]})
    actor = scripted({"model": "actor", "turns": script["turns"][1:]})
    session = _session(
        sample_repo, *_endpoint(planner.base_url, "planner"), *_endpoint(actor.base_url, "actor", "fast"),
        "routes.act='fast'", "agent.auto_test=false",
    )  # fmt: skip
    events = await _collect(session, "fix the failing test")
    calls = [e for e in events if e.type == "model_call_finished" and not e.warmup]
    assert [c.model for c in calls] == ["planner", "actor", "actor", "actor"]
    assert not any(c.prefix_break for c in calls)
    assert all(c.cached_tokens > 0 for c in calls)  # each model's warm-up or own earlier call is its prefix
    # Both servers saw one growing conversation with the same system prompt and tools.
    first_actor = _real(actor.requests)[0]
    assert (
        first_actor["messages"][: len(_real(planner.requests)[0]["messages"])] == _real(planner.requests)[0]["messages"]
    )
    assert events[-1].status == "finished"


async def test_openai_endpoints_get_a_stable_prompt_cache_key(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]})
    await _collect(_session(tmp_path, *_endpoint(server.base_url), "models.default.kind='openai'"), "x")
    (body,) = _real(server.requests)
    assert body["prompt_cache_key"].startswith("fastcode-") and "cache_prompt" not in body
    assert all(r.get("max_tokens") != 1 for r in server.requests)  # auto warm-up skips paid endpoints


async def test_two_invalid_calls_in_a_row_escalate(tmp_path, isolated_env, scripted) -> None:
    bad = {"tool_calls": [{"name": "read_file", "arguments": "{oops"}]}
    finish = {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}], "model": "big"}
    script = {"model": "small", "turns": [{**bad, "model": "small"}, {**bad, "model": "small"}, finish]}
    server = scripted(script)
    session = _session(
        tmp_path,
        *_endpoint(server.base_url, "small"),
        *_endpoint(server.base_url, "big", "big"),
        "routes.escalate='big'",
    )
    events = await _collect(session, "x")
    (escalation,) = [e for e in events if e.type == "escalated"]
    assert "invalid tool calls" in escalation.reason
    calls = [e for e in events if e.type == "model_call_finished" and not e.warmup]
    assert [c.route for c in calls] == ["plan", "act", "escalate"] and calls[-1].model == "big"
    assert events[-1].status == "finished"


def test_prefix_tracker_flags_a_rewritten_history() -> None:
    tracker = PrefixTracker()
    tools = [{"type": "function", "function": {"name": "x"}}]
    history = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    _, broke = tracker.check("m", tools, history)
    assert not broke
    _, broke = tracker.check("m", tools, [*history, {"role": "assistant", "content": "a"}])
    assert not broke
    _, broke = tracker.check("m", tools, [{"role": "system", "content": "s2"}, {"role": "user", "content": "u"}])
    assert broke
    _, broke = tracker.check("other", tools, history)
    assert not broke  # per model


async def test_out_of_steps_after_an_edit_gets_a_summary(tmp_path, isolated_env, scripted) -> None:
    (tmp_path / "a.txt").write_text("one\n")
    edit = {"tool_calls": [{"name": "edit_file", "arguments": {"path": "a.txt", "old": "one", "new": "two"}}]}
    script = {"turns": [edit, {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.txt"}}]},
                        {"content": "Changed one to two; nothing left."}]}  # fmt: skip
    server = scripted(script)
    events = await _collect(_session(tmp_path, *_endpoint(server.base_url), "agent.max_steps=2"), "change it")
    final = events[-1]
    assert final.status == "max_steps" and final.exit_code == 1
    assert final.summary == "Changed one to two; nothing left."
    calls = [e for e in events if e.type == "model_call_finished" and not e.warmup]
    assert [c.route for c in calls] == ["plan", "act", "summarize"]
    assert "step limit" in _real(server.requests)[-1]["messages"][-1]["content"]
