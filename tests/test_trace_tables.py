"""Issue 14: TTFT split into the wait and the server's own prefill where the server reports it (llama.cpp
`timings.prompt_ms`, vLLM's per-request `metrics.time_to_first_token_ms`), and tables that never cut a figure (trace
show through rich, the TUI panel's widths)."""

from __future__ import annotations

import json

from conftest import run_cli
from test_trace_export import _searched

from fastcode.core.trace import build, format_table, read_trace
from fastcode.frontends.tui.latency import FIGURES_WIDTH, model_figures, waterfall

QUIET = ["-c", "agent.edit_first='never'", "-c", "context.enabled=false", "-c", "agent.auto_test=false"]
FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}


def test_a_llamacpp_server_splits_ttft_into_wait_and_prefill(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH], "latency": {"ttft_ms": 120, "prefill_tps": 2000}}, flavor="llamacpp")
    args = ["exec", "look", "--base-url", server.base_url, "--model", "a-model-with-a-rather-long-name-q4_k_m",
            "--json", *QUIET, "-c", "agent.warmup='never'"]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    (call,) = [json.loads(x) for x in result.stdout.splitlines() if '"model_call_finished"' in x]
    assert call["server_prefill_ms"] > 100 and call["ttft_ms"] >= call["server_prefill_ms"]
    shown = run_cli(["trace", "show"], cwd=sample_repo, env=isolated_env).stdout
    header = next(line for line in shown.splitlines() if line.startswith("step"))
    assert "wait ms" in header and "prefill ms" in header
    line = next(line for line in shown.splitlines() if "a-model-with-a-rather-long-name-q4_k_m" in line)  # not cut
    assert f"{call['server_prefill_ms']:.0f}" in line
    run_cli(["trace", "export", "-o", str(sample_repo / "t.json")], cwd=sample_repo, env=isolated_env)
    exported = json.loads((sample_repo / "t.json").read_text())["traceEvents"]
    args = next(e["args"] for e in exported if e.get("cat") == "model")
    assert args["server_prefill_ms"] == call["server_prefill_ms"] and args["wait_ms"] >= 0


def test_a_vllm_server_with_per_request_metrics_splits_ttft_too(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH], "latency": {"ttft_ms": 120, "prefill_tps": 2000}}, flavor="vllm")
    args = ["exec", "look", "--base-url", server.base_url, "--model", "m", "--json", *QUIET,
            "-c", "agent.warmup='never'", "-c", "models.default.kind='vllm'"]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    assert server.requests[-1]["stream_options"] == {"include_usage": True}  # vLLM sends metrics on the usage chunk
    (call,) = [json.loads(x) for x in result.stdout.splitlines() if '"model_call_finished"' in x]
    assert call["server_prefill_ms"] > 100 and call["ttft_ms"] >= call["server_prefill_ms"]
    (run,) = (sample_repo / ".fastcode" / "runs").iterdir()
    (row,) = [r for r in build(read_trace(run / "trace.jsonl")).rows if r.kind == "model"]
    assert row.server_prefill_ms == call["server_prefill_ms"] and row.wait_ms is not None and row.provider == "vllm"


def test_no_figure_is_cut(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH]})  # answers at once: thousands of tokens per second
    run_cli(["exec", "look", "--base-url", server.base_url, "--model", "m", *QUIET], cwd=sample_repo, env=isolated_env)
    (run,) = (sample_repo / ".fastcode" / "runs").iterdir()
    builder = build(read_trace(run / "trace.jsonl"))
    for row in (r for r in builder.rows if r.kind == "model"):
        row.decode_tps = 123456.7
        figures = model_figures(row)
        assert len(figures) <= FIGURES_WIDTH and "123457" in figures
    assert "123456.7" in format_table(builder)


def test_the_tui_panel_splits_the_ttft_where_the_server_reports_its_prefill() -> None:
    from fastcode.core.trace import Row
    from fastcode.frontends.tui.latency import DECODE, PREFILL, WAIT, _bar

    row = Row("model", "1", 1, "plan", 0.0, end=10.0, first_token=6.0, ttft_ms=6000, server_prefill_ms=4000)
    bar = _bar(row, 10.0, 20, 10.0).plain
    assert bar == WAIT * 4 + PREFILL * 8 + DECODE * 8
    row.server_prefill_ms = None
    assert _bar(row, 10.0, 20, 10.0).plain == WAIT * 12 + DECODE * 8


def test_command_line_tables_fit_their_widest_cell() -> None:
    from fastcode.core.tables import render

    long = "12,345,678.9 tok/s (a figure wider than any fixed column)"
    text = render(("figure", "measured"), [("short", long), ("a much longer figure name", "1")], right=(1,))
    lines = text.splitlines()
    assert long in text and len({len(line) for line in lines}) == 1  # right-aligned: every line as wide


def test_trace_show_lists_search_candidates_with_the_winner_marked() -> None:
    lines = format_table(build(_searched())).splitlines()
    lost = next(line for line in lines if "#1 failed" in line).split()
    won = next(line for line in lines if "#3 passed" in line).split()
    assert lost == ["1", "search", "#1", "failed", "150"]  # step, route, verdict, the candidate's test time
    assert won == ["1", "search", "#3", "passed", "✓", "winner", "180"]
    assert not any("#2" in line for line in lines)  # a duplicate was not tested
    tests = [line.split() for line in lines if " tests " in line]
    assert tests == [["tests", "failed", "280"], ["1", "tests", "passed", "200"]]  # gathering has no step
    assert "tools 0.81 s" in lines[-2]


def test_the_tui_panel_draws_search_candidates_and_marks_the_winner() -> None:
    text = waterfall(build(_searched()), 120).plain()
    assert "✓ candidate #3" in text and "  candidate #1" in text and "tools 0.81 s" in text
