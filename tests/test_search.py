"""Test-time search against the scripted server: candidates from one cached prompt, tried in a scratch copy,
deduped, the first the tests pass applied; drawn in batches (`n`) only when the endpoint shows it pays; the budget
and the time limit hold; the user's tree is untouched by losers, an interrupt and a timeout."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from test_small_models import _run, _session

from fastcode.core.events import Event
from fastcode.core.trace import build

STATS = "mathutils/stats.py"
FIX = {"path": STATS, "old": "range(len(values) - window)", "new": "range(len(values) - window + 1)"}
WRONG = {"path": STATS, "old": "range(len(values) - window)", "new": "range(len(values) - window - 1)"}
WRONG2 = {"path": STATS, "old": "range(len(values) - window)", "new": "range(len(values) - 1)"}


def _edit(edit: dict, thought: str = "The range stops one window early.") -> dict:
    return {"content": thought, "tool_calls": [{"name": "edit_file", "arguments": edit}]}


def _of(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]


def _requests(server) -> list[dict]:
    return [r for r in server.requests if r.get("max_tokens") != 1]


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Scratch copies go here, so a test can see that none is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _left_behind(private_tmp: Path) -> list[Path]:
    """What a run left in the temporary folder: fastcode's own scratch folders (`/tmp/fastcode-<uid>/<repo hash>`)
    stay, empty; a scratch copy or a file there is left behind."""
    return [p for p in private_tmp.rglob("*") if p.is_file() or p.name.startswith(("search-", "sandbox-"))]


async def test_the_tests_choose_among_candidates_from_one_cached_prompt(
    sample_repo, isolated_env, scripted, private_tmp
) -> None:
    server = scripted({"turns": [_edit(WRONG), _edit(FIX, "Off by one.")]})
    before = (sample_repo / STATS).read_text()
    events = await _run(_session(sample_repo, server.base_url))
    tested = _of(events, "candidate_tested")
    assert [(c.index, c.result, c.seed) for c in tested] == [(1, "failed", 1), (2, "passed", 2)]
    assert tested[0].diff == f"{STATS} +1 -1" and tested[0].files == [STATS] and tested[0].tests_ms > 0
    first, second = _requests(server)
    assert first["messages"] == second["messages"]  # byte-stable prefix: the second costs decode only
    assert (first["temperature"], second["temperature"]) == (0.0, 0.8)
    schema = first["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["tool_calls"]["maxItems"] == 1  # exactly one edit per candidate
    # the first answer may think as usual; after it, a candidate's edit is what counts and its thought is short
    thoughts = [r["response_format"]["json_schema"]["schema"]["properties"]["thought"] for r in (first, second)]
    assert [t["maxLength"] for t in thoughts] == [400, 100]
    text = json.dumps(schema)
    assert '"const": "read_file"' not in text
    # its `old` is picked from the lines the prompt shows, exactly as they are in the file: it cannot be miscopied
    arguments = schema["properties"]["tool_calls"]["items"]["properties"]["arguments"]["properties"]
    assert arguments["path"] == {"const": STATS} and set(arguments) == {"path", "old", "new"}
    assert "    return [sum(values[i : i + window]) for i in range(len(values) - window)]" in arguments["old"]["enum"]
    calls = [e for e in _of(events, "model_call_finished") if not e.warmup]
    assert calls[1].cached_tokens > 0 and calls[1].cached_tokens >= calls[0].cached_tokens
    # only the winner reached the user's tree, through the normal tools (checkpoint, undo), and the tests agree
    assert [e.arguments["new"] for e in _of(events, "tool_started")] == [FIX["new"]]
    assert _of(events, "tests_run")[-1].passed and "window + 1" in (sample_repo / STATS).read_text()
    done = events[-1]
    assert (done.status, done.candidates, done.winner, done.summary) == ("finished", 2, 2, "Off by one.")
    assert _of(events, "search_finished")[0].winner == 2 and before != (sample_repo / STATS).read_text()
    assert _left_behind(private_tmp) == []  # the scratch copy is gone
    rows = [r for r in build(events).rows if r.kind == "candidate"]  # on the timeline, the winner marked
    assert [(r.label, r.step, r.ok, r.winner) for r in rows] == [
        (f"candidate #1 {STATS} +1 -1", 1, False, False),
        (f"candidate #2 {STATS} +1 -1", 1, True, True),
    ]
    assert [e.step for e in _of(events, "tests_run")][-1] == 1  # the winner's run in the tree, after step 1
    # the winner passed the failing tests and the whole command in the copy: the whole command alone confirms it
    after = events[events.index(_of(events, "search_finished")[0]) :]
    assert [e.command for e in _of(after, "tests_run")] == [_of(events, "tests_run")[0].command]


async def test_a_candidate_repeating_an_earlier_one_is_not_tested_again(sample_repo, isolated_env, scripted) -> None:
    same = {**WRONG, "replace_all": False}  # the default written out: the same edit
    server = scripted({"turns": [_edit(WRONG), _edit(same, "Said differently."), _edit(FIX)]})
    events = await _run(_session(sample_repo, server.base_url))
    tested = _of(events, "candidate_tested")
    assert [c.result for c in tested] == ["failed", "duplicate", "passed"]
    assert tested[1].detail == "the same as #1" and tested[1].tests_ms == 0
    assert _of(events, "search_finished")[0].distinct == 2


async def test_losing_candidates_never_touch_the_tree(sample_repo, isolated_env, scripted, private_tmp) -> None:
    read = {"content": "Let me look.", "tool_calls": [{"name": "read_file", "arguments": {"path": STATS}}]}
    server = scripted({"turns": [_edit(WRONG), _edit(WRONG2), read, {"content": "Done."}] + [{"content": "?"}] * 4})
    before = (sample_repo / STATS).read_text()
    session = _session(sample_repo, server.base_url, "agent.search.samples=2", "agent.search.if_none_pass='continue'")
    events = await _run(session)
    assert [c.result for c in _of(events, "candidate_tested")] == ["failed", "failed"]
    assert (sample_repo / STATS).read_text() == before and events[-1].diff == ""
    assert (events[-1].candidates, events[-1].winner) == (2, None)
    # the conversation goes on from the first answer, told it was not applied and what the tests said
    third = _requests(server)[2]
    assert WRONG["new"] in third["messages"][-2]["content"]
    assert "not applied" in third["messages"][-1]["content"] and "failed" in third["messages"][-1]["content"]
    assert "read_file" in json.dumps(third["response_format"])  # back to every tool
    assert _left_behind(private_tmp) == []


async def test_a_small_model_stops_when_no_candidate_passes(sample_repo, isolated_env, scripted) -> None:
    """One-edit candidates (a constrained model): once none passes, the run stops with the tree as it was; the
    conversation that used to follow fixed nothing and edited tests."""
    server = scripted({"turns": [_edit(WRONG), _edit(WRONG2)] + [{"content": "Done."}] * 4})
    before = (sample_repo / STATS).read_text()
    session = _session(sample_repo, server.base_url, "agent.search.samples=2")
    events = await _run(session)
    done = events[-1]
    assert (done.status, done.exit_code, done.model_calls, done.candidates) == ("stuck", 1, 2, 2)
    assert done.summary.startswith("stuck: none of the 2 candidate fixes made the failing tests pass")
    assert [e.kind for e in events if e.type == "error"] == ["stuck"]
    assert (sample_repo / STATS).read_text() == before and done.diff == ""
    assert len(_requests(server)) == 2
    # the first answer and what the tests said of it stay in the conversation a follow-up turn goes on from
    assert WRONG["new"] in str(session.messages[-2]["content"]) and "not applied" in session.messages[-1]["content"]


async def test_the_budget_caps_the_candidates(sample_repo, isolated_env, scripted) -> None:
    wrongs = [_edit({**WRONG, "new": f"range(len(values) - {k})"}) for k in range(2, 12)]
    server = scripted({"turns": [*wrongs, *[{"content": "Done."}] * 5]})
    events = await _run(
        _session(sample_repo, server.base_url, "agent.search.samples=5", "agent.search.draw='sequential'")
    )
    assert len(_of(events, "candidate_tested")) == 5 and events[-1].candidates == 5
    assert all(r.get("n") is None for r in _requests(server))


async def test_no_search_without_fastcodes_own_test_runs(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [_edit(FIX), {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]})
    events = await _run(_session(sample_repo, server.base_url, "agent.auto_test=false"))
    assert _of(events, "search_started") == [] and events[-1].candidates == 0


async def test_no_search_when_the_tests_pass(sample_repo, isolated_env, scripted) -> None:
    stats = sample_repo / STATS
    stats.write_text(stats.read_text().replace("window)]", "window + 1)]"))
    server = scripted({"turns": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]})
    events = await _run(_session(sample_repo, server.base_url), "`mean` gives the wrong result: fix it")
    assert _of(events, "search_started") == [] and events[-1].candidates == 0


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"supports_n": True, "latency": {"decode_tps": 300, "batch_parallel": 4}}, "batch"),  # a GPU server
        ({"supports_n": True, "latency": {"decode_tps": 300, "batch_parallel": 1}}, "sequential"),  # a CPU
        ({"supports_n": False, "latency": {"decode_tps": 300}}, "sequential"),  # `n` ignored
    ],
)
async def test_candidates_come_in_batches_only_where_batching_pays(
    sample_repo, isolated_env, scripted, script, expected
) -> None:
    long = "The range stops one window early, so the last window is never summed; " * 3
    wrongs = [_edit({**WRONG, "new": f"range(len(values) - {k})"}, long) for k in range(2, 9)]
    server = scripted({**script, "turns": [*wrongs, _edit(FIX, long)] * 2})  # two runs
    events = await _run(_session(sample_repo, server.base_url))
    finished = _of(events, "search_finished")[0]
    assert finished.draw == expected and "n=2" in finished.draw_reason, finished.draw_reason
    ns = [r.get("n") for r in _requests(server)]
    assert ns[:2] == [None, 2]  # the first answer alone, then one measured batch of two
    if expected == "batch":
        assert ns[2] == 4 and len(ns) < 8  # fewer requests than candidates
    else:
        assert all(n is None for n in ns[2:])
    assert events[-1].status == "finished" and events[-1].winner == 8
    assert "window + 1" in (sample_repo / STATS).read_text()

    # the next run on this endpoint knows: no batch of two to measure again
    (sample_repo / STATS).write_text((sample_repo / STATS).read_text().replace("window + 1)", "window)"))
    first_run = len(_requests(server))
    events = await _run(_session(sample_repo, server.base_url))
    again = _of(events, "search_finished")[0]
    assert (again.draw, again.draw_reason) == (expected, f"{finished.draw_reason} (measured by an earlier run)")
    ns = [r.get("n") for r in _requests(server)[first_run:]]
    assert ns[:2] == [None, 4] if expected == "batch" else all(n is None for n in ns)
    assert events[-1].status == "finished" and events[-1].winner == 8


async def test_an_interrupt_mid_search_leaves_the_tree_as_it_was(
    sample_repo, isolated_env, scripted, private_tmp
) -> None:
    slow = "import os, time\n\ndef test_slow():\n    if '/search-' in os.getcwd():\n        time.sleep(30)\n"
    (sample_repo / "tests/test_slow.py").write_text(slow)  # the whole-suite run of a candidate (in the copy) hangs
    server = scripted({"turns": [_edit(FIX)]})
    session = _session(sample_repo, server.base_url, "agent.test_cmd='python -m pytest -q'")
    before = (sample_repo / STATS).read_text()
    events: list[Event] = []

    async def consume() -> None:
        async for event in session.run("fix the failing test"):
            events.append(event)
            if event.type == "search_started":
                asyncio.get_running_loop().call_later(1.0, session.interrupt)

    await asyncio.wait_for(consume(), 60)
    assert [e.message for e in _of(events, "error")] == []
    assert events[-1].status == "interrupted" and (sample_repo / STATS).read_text() == before
    assert events[-1].diff == "" and _left_behind(private_tmp) == []


async def test_the_time_limit_ends_a_search(sample_repo, isolated_env, scripted, private_tmp) -> None:
    server = scripted({"latency": {"decode_tps": 40}, "turns": [_edit(WRONG, "x" * 200)] * 8})
    before = (sample_repo / STATS).read_text()
    events = await _run(_session(sample_repo, server.base_url, "agent.timeout_s=4"))
    assert events[-1].status == "timeout" and events[-1].wall_s < 10
    assert (sample_repo / STATS).read_text() == before and _left_behind(private_tmp) == []


def test_the_step_output_and_the_json_result_show_the_candidates(sample_repo, isolated_env, scripted) -> None:
    from conftest import run_cli

    server = scripted({"turns": [_edit(WRONG), _edit(FIX)]})
    args = ["exec", "fix the failing test", "--base-url", server.base_url, "--model", "m"]
    human = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert human.returncode == 0, human.stderr
    assert "#1 seed 1 t=0 · " in human.stderr and f"{STATS} +1 -1 · failed (" in human.stderr
    assert "search: candidate 2 won · 2 drawn, 2 distinct" in human.stderr
    (sample_repo / STATS).write_text((sample_repo / STATS).read_text().replace("window + 1)", "window)"))
    server = scripted({"turns": [_edit(WRONG), _edit(FIX)]})
    as_json = run_cli([*args[:3], server.base_url, "--model", "m", "--json"], cwd=sample_repo, env=isolated_env)
    result = json.loads(as_json.stdout.splitlines()[-1])
    assert (result["type"], result["candidates"], result["winner"]) == ("result", 2, 2)
    kinds = [json.loads(line)["type"] for line in as_json.stdout.splitlines()]
    assert kinds.count("candidate_tested") == 2 and "search_started" in kinds and "search_finished" in kinds
