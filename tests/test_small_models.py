"""What a small model needs, against the scripted server: constrained and text tool calls, recovery of calls
written as text, the stuck detector, edit + finish in one call (declined while the tests fail), failing tests
first, read-only tools started while the model is still writing, and a context budget sized to the endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from fastcode.agent.engine import Session
from fastcode.core.config import load_settings
from fastcode.core.events import Event

FIX = {"path": "mathutils/stats.py", "old": "range(len(values) - window)", "new": "range(len(values) - window + 1)"}
WRONG = {"path": "mathutils/stats.py", "old": "range(len(values) - window)", "new": "range(len(values) - window - 1)"}


def _session(repo: Path, base_url: str, *overrides: str) -> Session:
    loaded = load_settings(
        repo, overrides=[f"models.default.base_url={base_url!r}", "models.default.model='m'", *overrides]
    )
    return Session(loaded.settings, repo)


async def _run(session: Session, task: str = "fix the failing test") -> list[Event]:
    return [event async for event in session.run(task)]


def _calls(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type == "model_call_finished" and not e.warmup]


def _edit_and_finish(edit: dict, summary: str = "fixed the range bound") -> dict:
    return {
        "content": "The range stops one window early.",
        "tool_calls": [{"name": "edit_file", "arguments": edit}, {"name": "finish", "arguments": {"summary": summary}}],
    }


async def test_constrained_mode_fixes_in_one_call(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [_edit_and_finish(FIX)]})
    events = await _run(_session(sample_repo, server.base_url, "models.default.tool_mode='constrained'"))
    done = events[-1]
    assert done.status == "finished" and done.exit_code == 0 and done.model_calls == 1
    body = next(r for r in server.requests if r.get("max_tokens") != 1)
    assert "tools" not in body and body["response_format"]["type"] == "json_schema"
    assert "# Tools" in body["messages"][0]["content"]  # the tools are described in the system prompt
    call = _calls(events)[0]
    assert call.tool_mode == "constrained" and call.recovered == ""
    assert [c.name for c in call.tool_calls] == ["edit_file", "finish"]
    assert "window + 1" in (sample_repo / "mathutils/stats.py").read_text()
    tests = [e for e in events if e.type == "tests_run"]
    assert tests[-1].passed


async def test_auto_mode_is_constrained_on_a_loopback_server(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [_edit_and_finish(FIX)]})
    events = await _run(_session(sample_repo, server.base_url))
    assert _calls(events)[0].tool_mode == "constrained"


async def test_finish_is_declined_while_the_tests_fail(sample_repo, isolated_env, scripted) -> None:
    undo_wrong = {"path": "mathutils/stats.py", "old": "window - 1)", "new": "window + 1)"}
    server = scripted({"turns": [_edit_and_finish(WRONG, "done"), _edit_and_finish(undo_wrong)]})
    never = "agent.edit_first='never'"
    events = await _run(_session(sample_repo, server.base_url, "models.default.tool_mode='constrained'", never))
    finishes = [e for e in events if e.type == "tool_finished" and e.name == "finish"]
    assert [f.ok for f in finishes] == [False, True]
    assert finishes[0].output.startswith("finish declined")
    assert events[-1].status == "finished" and events[-1].model_calls == 2
    second = [r for r in server.requests if r.get("max_tokens") != 1][1]
    results = second["messages"][-1]["content"]
    assert "finish declined" in results and "failed" in results


async def test_failing_tests_run_first_after_an_edit(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [_edit_and_finish(FIX)]})
    # an edit of the loop (a search's winner passed both in a scratch copy already: the whole command alone confirms it)
    events = await _run(_session(sample_repo, server.base_url, "agent.edit_first='never'"))
    runs = [e for e in events if e.type == "tests_run"]
    # gathered run (fails), the previously failing test alone (passes), then the whole command (passes)
    assert [r.passed for r in runs] == [False, True, True]
    assert "test_moving_sum_covers_every_window" in runs[1].command
    assert "::" not in runs[2].command


async def test_a_wrong_fix_is_reported_from_the_focused_run(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [_edit_and_finish(WRONG, "done"), {"content": "I give up."}] + [{"content": "?"}] * 3})
    events = await _run(_session(sample_repo, server.base_url, "agent.max_steps=3", "agent.edit_first='never'"))
    runs = [e for e in events if e.type == "tests_run"]
    assert [r.passed for r in runs[:2]] == [False, False] and "::" in runs[1].command
    assert len(runs) == 2  # the whole suite is not run while the failing test still fails


async def test_native_mode_recovers_calls_written_as_text(sample_repo, isolated_env, scripted) -> None:
    turn = {**_edit_and_finish(FIX), "text_format": "tool_call"}
    server = scripted({"turns": [turn]})
    events = await _run(_session(sample_repo, server.base_url, "models.default.tool_mode='native'"))
    assert events[-1].status == "finished"
    call = _calls(events)[0]
    assert call.recovered == "tool_call tag" and [c.name for c in call.tool_calls] == ["edit_file", "finish"]


async def test_text_mode_parses_the_json_reply(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [{**_edit_and_finish(FIX), "text_format": "json"}]})
    events = await _run(_session(sample_repo, server.base_url, "models.default.tool_mode='text'"))
    body = next(r for r in server.requests if r.get("max_tokens") != 1)
    assert "tools" not in body and "response_format" not in body
    assert events[-1].status == "finished" and _calls(events)[0].recovered == ""


async def test_a_model_without_tool_calls_stops_as_stuck(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"content": "Done."}] * 10})
    events = await _run(_session(sample_repo, server.base_url, "agent.edit_first='never'"))
    done = events[-1]
    assert done.status == "stuck" and done.exit_code == 1 and done.model_calls == 3
    assert any(e.type == "error" and e.kind == "stuck" for e in events)


async def test_stuck_escalates_once_when_an_escalate_route_exists(sample_repo, isolated_env, scripted) -> None:
    small = scripted({"turns": [{"content": "Done."}] * 10})
    big = scripted({"turns": [_edit_and_finish(FIX)]})
    overrides = [
        f"models.big.base_url={big.base_url!r}",
        "models.big.model='big'",
        "routes.escalate='big'",
    ]
    events = await _run(_session(sample_repo, small.base_url, *overrides))
    assert any(e.type == "escalated" for e in events)
    assert events[-1].status == "finished"


async def test_a_model_repeating_the_same_reads_is_stuck(sample_repo, isolated_env, scripted) -> None:
    read = {
        "content": "Look again.",
        "tool_calls": [{"name": "read_file", "arguments": {"path": "tests/test_stats.py"}}],
    }
    server = scripted({"turns": [read] * 10})
    events = await _run(_session(sample_repo, server.base_url, "agent.edit_first='never'"))
    assert events[-1].status == "stuck" and events[-1].model_calls == 4  # one new read, then three repeats
    last = [r for r in server.requests if r.get("max_tokens") != 1][-1]["messages"][-1]["content"]
    assert "You made this exact call before" in last


async def test_edits_leaving_the_tests_failing_as_before_are_no_progress(sample_repo, isolated_env, scripted) -> None:
    def write(i: int) -> dict:  # a new, valid call every time, but the failing test stays exactly as it was
        return {"tool_calls": [{"name": "write_file", "arguments": {"path": f"notes{i}.txt", "content": f"try {i}"}}]}

    server = scripted({"turns": [write(i) for i in range(10)]})
    events = await _run(_session(sample_repo, server.base_url, "agent.edit_first='never'"))
    assert events[-1].status == "stuck" and events[-1].model_calls == 4  # one new failure, then three repeats
    assert "left the tests failing as before" in events[-1].summary


async def test_invalid_calls_are_not_usable(sample_repo, isolated_env, scripted) -> None:
    bad = {"tool_calls": [{"name": "no_such_tool", "arguments": {}}]}
    server = scripted({"turns": [bad] * 10})
    events = await _run(_session(sample_repo, server.base_url, "models.default.tool_mode='native'"))
    assert events[-1].status == "stuck" and events[-1].model_calls == 3


async def test_read_tools_start_while_the_model_is_still_writing(sample_repo, isolated_env, scripted) -> None:
    reads = {
        "content": "Read both.",
        "tool_calls": [
            {"name": "read_file", "arguments": {"path": "mathutils/stats.py"}},
            {"name": "read_file", "arguments": {"path": "tests/test_stats.py"}},
        ],
    }
    # slow decode: the second call is still being written while the first read already ran
    server = scripted({"latency": {"decode_tps": 200}, "turns": [reads, _edit_and_finish(FIX)]})
    for mode in ("constrained", "native"):
        # edit_first off: with a failing test, a constrained model's first reply may otherwise only edit
        options = (f"models.default.tool_mode={mode!r}", "agent.edit_first='never'")
        events = await _run(_session(sample_repo, server.base_url, *options))
        first_call_end = next(e.seq for e in events if e.type == "model_call_finished" and not e.warmup)
        started = [e.seq for e in events if e.type == "tool_started" and e.name == "read_file"]
        assert len(started) == 2 and started[0] < first_call_end, mode
        outputs = [e.output for e in events if e.type == "tool_finished" and e.name == "read_file"]
        assert all("|" in out for out in outputs)
        server = scripted({"latency": {"decode_tps": 200}, "turns": [reads, _edit_and_finish(FIX)]})
        (sample_repo / "mathutils/stats.py").write_text(
            (sample_repo / "mathutils/stats.py").read_text().replace("window + 1)", "window)")
        )


async def test_context_budget_follows_the_measured_prefill_rate(sample_repo, isolated_env, scripted, tmp_path,
                                                               monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # a CPU-like endpoint: 150 prompt tokens/s; the warm-up measures it, the budget is 1 s of prefill
    server = scripted({"latency": {"prefill_tps": 150}, "turns": [_edit_and_finish(FIX)]})
    events = await _run(_session(sample_repo, server.base_url, "context.first_call_s=1.0", "agent.warmup='always'"))
    budget = next(e for e in events if e.type == "context_budgeted")
    assert budget.rate_source == "warm-up" and 100 < budget.prefill_tps < 200
    assert budget.budget_tokens < 200 and budget.used_tokens <= 600 + 5  # context.min_tokens for the failure
    assert budget.left_out  # the repo map and full output did not fit
    task = next(r for r in server.requests if r.get("max_tokens") != 1)["messages"][1]["content"]
    assert "the failure" in task  # the failing assertion comes first
    remembered = json.loads((tmp_path / "cache/fastcode/prefill-rates.json").read_text())
    assert 100 < next(iter(remembered.values())) < 200

    fast = scripted({"latency": {"prefill_tps": 50_000}, "turns": [_edit_and_finish(FIX)]})
    (sample_repo / "mathutils/stats.py").write_text(
        (sample_repo / "mathutils/stats.py").read_text().replace("window + 1)", "window)")
    )
    events = await _run(_session(sample_repo, fast.base_url, "agent.warmup='always'"))
    budget = next(e for e in events if e.type == "context_budgeted")
    assert budget.budget_tokens > 10_000 and budget.left_out == []


async def test_a_server_fastcode_started_is_taken_for_a_cpu_and_remembered_by_its_model(
    sample_repo, isolated_env, scripted, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    local = ("models.default.api_key_env='FASTCODE_LOCAL_API_KEY'", "agent.warmup='never'")
    # nothing measured yet: the embedded model's server is assumed to prefill like a CPU, not a hosted endpoint
    server = scripted({"latency": {"prefill_tps": 400}, "turns": [_edit_and_finish(FIX)]})
    events = await _run(_session(sample_repo, server.base_url, *local))
    budget = next(e for e in events if e.type == "context_budgeted")
    assert (budget.rate_source, budget.prefill_tps) == ("assumed", 150.0)
    assert "full output (end)" in " ".join(budget.left_out)  # what repeats the failure goes first
    remembered = json.loads((tmp_path / "cache/fastcode/prefill-rates.json").read_text())
    assert list(remembered) == ["launched here|m"] and 200 < remembered["launched here|m"] < 600

    # the next start of that server gets another port; the rate it measured still holds
    (sample_repo / "mathutils/stats.py").write_text(
        (sample_repo / "mathutils/stats.py").read_text().replace("window + 1)", "window)")
    )
    again = scripted({"turns": [_edit_and_finish(FIX)]})
    assert again.base_url != server.base_url
    events = await _run(_session(sample_repo, again.base_url, *local))
    budget = next(e for e in events if e.type == "context_budgeted")
    assert budget.rate_source == "previous run" and 200 < budget.prefill_tps < 600


async def test_the_gathered_context_is_the_same_bytes_from_one_run_to_the_next(
    sample_repo, isolated_env, scripted
) -> None:
    """The failing run's duration ("1 failed in 0.03s") is left out, so a second run on the same failure sends the
    prompt the server cached for the first."""
    prompts = []
    for _ in range(2):
        server = scripted({"turns": [_edit_and_finish(FIX)]})
        await _run(_session(sample_repo, server.base_url, "agent.warmup='never'", "agent.search.samples=1"))
        prompts.append(next(r for r in server.requests if r.get("max_tokens") != 1)["messages"][1]["content"])
        (sample_repo / "mathutils/stats.py").write_text(
            (sample_repo / "mathutils/stats.py").read_text().replace("window + 1)", "window)")
        )
    assert "1 failed" in prompts[0] and " in 0." not in prompts[0]
    assert prompts[0] == prompts[1]


def test_durations_are_taken_out_of_test_summaries_only() -> None:
    from fastcode.context.gather import without_durations

    assert without_durations("==== 1 failed, 2 passed in 0.12s ====") == "==== 1 failed, 2 passed ===="
    assert without_durations("1 failed in 0.06s\n2 passed, 1 warning in 1.50s") == "1 failed\n2 passed, 1 warning"
    assert without_durations("E  assert 'x in 0.5s' == 'y'") == "E  assert 'x in 0.5s' == 'y'"


async def test_an_edit_first_reply_that_makes_the_failing_tests_pass_finishes_the_run(
    sample_repo, isolated_env, scripted
) -> None:
    server = scripted({"turns": [{"content": "Off by one.", "tool_calls": [{"name": "edit_file", "arguments": FIX}]}]})
    events = await _run(_session(sample_repo, server.base_url))
    assert events[-1].status == "finished" and events[-1].model_calls == 1
    assert events[-1].summary == "Off by one."


async def test_edit_first_needs_a_failure_or_a_change_request(sample_repo, isolated_env, scripted) -> None:
    stats = sample_repo / "mathutils/stats.py"
    stats.write_text(stats.read_text().replace("window)]", "window + 1)]"))  # the tests pass now
    finish = {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
    for task, edit_only in (("explain what `mean` does", False), ("`mean` gives the wrong result: fix it", True)):
        server = scripted({"turns": [finish, finish]})
        await _run(_session(sample_repo, server.base_url), task)
        first = next(r for r in server.requests if r.get("max_tokens") != 1)
        assert ('"const": "read_file"' not in json.dumps(first["response_format"])) is edit_only, task
