"""`fastcode bench` runs end to end and prints every figure with its target (figures are not asserted here); the
per-step overhead counts a search candidate's tests as busy time."""

from __future__ import annotations

import pytest
from conftest import run_cli
from test_trace_export import _searched

from fastcode.bench.report import overheads
from fastcode.core.events import StepFinished, StepStarted


def test_bench_prints_every_agent_figure(tmp_path, isolated_env) -> None:
    result = run_cli(["bench", "--runs", "1", "--only", "agent"], cwd=tmp_path, env=isolated_env, timeout=300)
    assert result.returncode == 0, result.stderr
    for figure in ("case study wall time", "case study model calls", "first request on the wire",
                   "served from cache", "engine overhead per step", "all runs finished"):  # fmt: skip
        assert figure in result.stdout
    assert (
        "all runs finished" in result.stdout and "NO" not in result.stdout.split("all runs finished")[1].split("\n")[0]
    )


def test_bench_local_prints_one_skip_line_per_local_figure_without_llama_server(tmp_path, isolated_env) -> None:
    env = dict(isolated_env, FASTCODE_LLAMA_SERVER=str(tmp_path / "no-llama-server"))
    result = run_cli(["bench", "--runs", "1", "--only", "local"], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for figure in ("embedded model TTFT, shared prefix, cold / warm", "embedded model: fastcode exec fix, cold / warm"):
        row = next(line for line in lines if line.startswith(figure))
        assert "skipped: FASTCODE_LLAMA_SERVER" in row and row.rstrip().endswith("-")


def test_the_local_ttft_bench_prompts_with_fastcodes_own_system_prompt_and_tools() -> None:
    from fastcode.bench.ttft_local import _system

    system = _system()
    assert system.startswith("You are fastcode") and "- edit_file {" in system


def test_the_fix_search_rows_compare_search_with_the_first_answer() -> None:
    from fastcode.bench.fix_search import rows, suite

    assert suite().is_file()
    summary = {"instances": 15, "resolved_at_1": 2, "resolved": 4, "resolved_wall_s_median": 18.5,
               "candidates": {"total": 60, "searched": 15, "won_by_search": 2}}  # fmt: skip
    table = {name: (value, met) for name, value, _, met in rows(summary)}
    assert table["fix search: resolved@1 (bundled, embedded model)"] == ("2/15", None)
    assert table["fix search: resolved with search"] == ("4/15 (2.0x)", True)
    assert table["fix search: median s per resolved instance"] == ("18.5 s", True)
    worse = rows(summary | {"resolved": 2, "resolved_wall_s_median": None})
    assert [met for *_, met in worse][1:3] == [False, False]


def test_big_inputs_bench_prints_a_row_per_case() -> None:
    from fastcode.bench import big_inputs

    rows = big_inputs.rows()
    tools, checkpoints = rows[: len(big_inputs.CASES)], rows[len(big_inputs.CASES) :]
    assert [r[0] for r in tools] == [label for label, _, _ in big_inputs.CASES]
    assert all(" s, " in value and "MB peak" in value for _, value, _, _ in tools)
    assert [r[0].split(",")[0] for r in checkpoints] == [".git growth", "first write waits for the checkpoint (median)"]


def test_the_step_overhead_counts_search_candidates_as_busy() -> None:
    events = _searched()
    search = next(i for i, e in enumerate(events) if e.type == "search_started")
    events.insert(search, StepStarted(run_id="r", seq=90, t=100.4, step=1, route="plan"))
    finished = next(i for i, e in enumerate(events) if e.type == "search_finished")
    events.insert(finished + 1, StepFinished(run_id="r", seq=91, t=101.8, step=1, ms=1400))
    # step 1 lasts 1.4 s: two model calls (0.6 s, 0.4 s) and two candidates' tests (0.15 s, 0.18 s) busy it
    assert overheads(events) == [pytest.approx(70, abs=0.5)]
