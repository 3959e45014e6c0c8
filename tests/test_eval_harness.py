"""`fastcode eval` end to end: the real CLI, real copies, real pytest runs, the real agent on scripted servers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli
from llama_support import MISSING, llama_env

from fastcode.evals.instances import Instance, load_suite
from fastcode.evals.workspace import patch_paths

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "evals" / "suites"
BUNDLED = SUITES / "bundled.jsonl"
SCRIPTED_IDS = ["textkit-wrap-exact-width", "stockroom-sku-case", "datekit-date-range-end"]
FAST_TESTS = "agent.test_cmd=PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_gold_run_of_the_bundled_suite_resolves_everything(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    before = _tree(SUITES)
    out = tmp_path / "out"
    result = run_cli(
        ["eval", str(BUNDLED), "--gold", "--workers", "2", "--out", str(out)], cwd=tmp_path, env=isolated_env
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^resolved +15/15 \(100\.0%\)$", result.stdout, re.MULTILINE)  # the terminal's table
    assert "[15/15] resolved 15/15" in result.stderr  # progress: done/total, resolved so far, elapsed, ETA
    assert "ETA" in result.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert summary["resolved_pct"] == 100.0 and summary["errors"] == 0 and summary["mode"] == "gold"
    assert "| resolved | **15/15 (100.0%)** |" in (out / "summary.md").read_text()
    results = _lines(out / "results.jsonl")
    ids = [e.instance_id for e in load_suite(BUNDLED)]
    assert [r["instance_id"] for r in results] == ids
    assert all(r["resolved"] and r["status"] == "resolved" and r["mode"] == "gold" for r in results)
    predictions = _lines(out / "predictions.jsonl")
    assert set(predictions[0]) == {"instance_id", "model_name_or_path", "model_patch"}
    instances = {i.instance_id: i for i in load_suite(BUNDLED) if isinstance(i, Instance)}
    for prediction in predictions:
        gold = instances[prediction["instance_id"]].patch
        assert patch_paths(prediction["model_patch"]) == patch_paths(gold)
    assert (out / "instances" / ids[0] / "tests.log").is_file()
    assert _tree(SUITES) == before  # the source trees were only read


def test_resume_skips_finished_instances(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    first = run_cli(["eval", str(BUNDLED), "--gold", "--limit", "2", "--out", str(out)], cwd=tmp_path, env=isolated_env)
    assert first.returncode == 0, first.stderr
    done = {r["instance_id"]: r["total_s"] for r in _lines(out / "results.jsonl")}

    again = run_cli(["eval", str(BUNDLED), "--gold", "--limit", "2", "--out", str(out)], cwd=tmp_path, env=isolated_env)
    assert again.returncode == 2 and "already holds results" in again.stderr

    resumed = run_cli(
        ["eval", str(BUNDLED), "--gold", "--limit", "3", "--out", str(out), "--resume", "--json"],
        cwd=tmp_path,
        env=isolated_env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == ""  # --json: no progress display
    printed = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert [p["type"] for p in printed] == ["instance", "summary"]
    assert printed[0]["instance_id"] not in done
    results = _lines(out / "results.jsonl")
    assert len(results) == 3 and printed[1]["instances"] == 3
    assert {r["instance_id"]: r["total_s"] for r in results[:2]} == done
    assert len(_lines(out / "predictions.jsonl")) == 3

    # A narrower selection resumed later neither reruns nor drops anything.
    narrow = run_cli(
        ["eval", str(BUNDLED), "--gold", "--only", results[0]["instance_id"], "--out", str(out), "--resume"],
        cwd=tmp_path,
        env=isolated_env,
    )
    assert narrow.returncode == 0 and "0 instances (1 already done)" in narrow.stderr
    assert _lines(out / "results.jsonl") == results


def test_broken_instances_are_errors_and_the_run_goes_on(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    good = json.loads(BUNDLED.read_text().splitlines()[0])
    good["repo_path"] = str(SUITES / good["repo_path"])
    suite = tmp_path / "suite.jsonl"
    lines = [
        good | {"instance_id": "bad-repo", "repo_path": str(tmp_path / "nowhere")},
        good | {"instance_id": "no-test-cmd", "test_cmd": ""},
        good | {"instance_id": "setup-fails", "setup": ["echo preparing", "exit 3"]},
        good | {"instance_id": "bug-does-not-apply", "patch": good["patch"].replace("<= width", "<== width")},
        good | {"instance_id": "gold-does-not-apply", "base_has_fix": False},  # the tree already has the fix
        good | {"instance_id": "tests-cannot-run", "test_cmd": "no-such-test-runner"},
        {"instance_id": "no-statement"},
        good,
    ]
    suite.write_text("".join(json.dumps(line) + "\n" for line in lines) + "{broken json\n")
    out = tmp_path / "out"
    result = run_cli(
        ["eval", str(suite), "--gold", "--workers", "2", "--out", str(out)], cwd=tmp_path, env=isolated_env
    )
    assert result.returncode == 1
    by_id = {r["instance_id"]: r for r in _lines(out / "results.jsonl")}
    assert by_id[good["instance_id"]]["status"] == "resolved"
    errors = {k: v["error"] for k, v in by_id.items() if v["status"] == "error"}
    assert "is not a folder" in errors["bad-repo"]
    assert "no test_cmd" in errors["no-test-cmd"]
    assert "setup command 2 failed (exit 3)" in errors["setup-fails"]
    assert "patch (reversed) does not apply" in errors["bug-does-not-apply"]
    assert "gold patch does not apply" in errors["gold-does-not-apply"]
    assert "command not found" in errors["tests-cannot-run"]
    assert "problem_statement" in errors["no-statement"]
    assert "not valid JSON" in errors["line-9"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 8 and summary["resolved"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/suite.jsonl"], "cannot read suite"),
        ([str(BUNDLED), "--workers", "0"], "--workers: must be positive"),
        ([str(BUNDLED), "--only", "nope"], "--only nope: no such instance"),
        ([str(BUNDLED), "--resume"], "--resume needs --out"),
        ([str(BUNDLED), "--model", "scripted:/nonexistent"], "not a folder of <instance_id>.json"),
        ([str(BUNDLED), "-c", "agent.max_steps=zero"], "agent.max_steps"),
        pytest.param(
            [str(BUNDLED)],
            "no model endpoint configured",
            marks=pytest.mark.skipif(MISSING is None, reason="the embedded model is installed: eval runs on it"),
        ),
        (["make-tasks", str(SUITES / "repos" / "textkit"), "--out", "x.jsonl"], "--n"),
        (["make-tasks", "/nonexistent", "--n", "2", "--out", "x.jsonl"], "not a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path: Path, isolated_env: dict[str, str]) -> None:
    result = run_cli(["eval", *args], cwd=tmp_path, env=isolated_env)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert message in result.stderr and result.stderr.startswith("fastcode eval: ")


def test_scripted_runs_resolve_through_the_real_agent(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    only = [arg for i in SCRIPTED_IDS for arg in ("--only", i)]
    args = ["eval", str(BUNDLED), "--model", f"scripted:{SUITES / 'scripted'}", "--workers", "2", "--out", str(out)]
    result = run_cli(
        [*args, *only, "-c", FAST_TESTS, "--max-steps", "8", "--timeout", "120"],
        cwd=tmp_path,
        env=isolated_env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    results = {r["instance_id"]: r for r in _lines(out / "results.jsonl")}
    assert list(results) == SCRIPTED_IDS
    for r in results.values():
        assert r["resolved"] and r["agent_status"] == "finished" and r["exit_code"] == 0
        assert r["model_calls"] == r["steps"] == 4
        assert r["prompt_tokens"] > r["cached_tokens"] > 0 and r["completion_tokens"] > 0
        assert r["ttft_ms_median"] is not None and r["wall_s"] > 0 and r["tool_s"] > 0
        assert Path(r["trace"]).is_file() and Path(r["trace"]).is_relative_to(out)
    two_files = next(p for p in _lines(out / "predictions.jsonl") if p["instance_id"] == "stockroom-sku-case")
    assert patch_paths(two_files["model_patch"]) == ["stockroom/inventory.py", "stockroom/models.py"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resolved"] == 3 and summary["model_calls"]["per_instance"] == 4.0
    assert summary["tokens"]["cached_share"] > 0.5 and summary["wall_s"]["p95"] >= summary["wall_s"]["median"]
    assert set(summary["time_s"]) == {"model", "tool", "other"}
    assert "model calls per instance | 4.0" in (out / "summary.md").read_text()


def test_an_exhausted_script_is_scored_as_unresolved(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    give_up = {"turns": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "nothing to do"}}]}]}
    (scripts / "datekit-leap-century.json").write_text(json.dumps(give_up))
    out = tmp_path / "out"
    args = ["eval", str(BUNDLED), "--model", f"scripted:{scripts}", "--out", str(out), "--json"]
    result = run_cli(
        [*args, "--only", "datekit-leap-century", "--only", "datekit-date-range-end", "-c", FAST_TESTS],
        cwd=tmp_path,
        env=isolated_env,
    )
    assert result.returncode == 1
    by_id = {r["instance_id"]: r for r in _lines(out / "results.jsonl")}
    leap = by_id["datekit-leap-century"]
    assert leap["status"] == "unresolved" and leap["fail_to_pass"] == "0/1" and leap["agent_status"] == "finished"
    assert "test_century_leap_years (failed)" in leap["failing"][0]
    assert "no scripted trajectory" in by_id["datekit-date-range-end"]["error"]


def test_an_unreachable_endpoint_is_an_error_with_its_reason(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    args = ["eval", str(BUNDLED), "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "-c", "agent.max_retries=0"]
    result = run_cli([*args, "--limit", "1", "--out", str(tmp_path / "out")], cwd=tmp_path, env=isolated_env)
    assert result.returncode == 1
    (only,) = _lines(tmp_path / "out" / "results.jsonl")
    assert only["status"] == "error"
    assert only["error"].startswith("agent endpoint error (exit 3): cannot reach endpoint http://127.0.0.1:9/v1")


@pytest.mark.llama
@pytest.mark.skipif(MISSING is not None, reason=f"needs llama-server and the embedded model: {MISSING}")
def test_with_no_endpoint_the_eval_runs_on_the_embedded_model(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    args = ["eval", str(BUNDLED), "--only", "datekit-leap-century", "--max-steps", "1", "--timeout", "120", "--out",
            str(out), "-c", FAST_TESTS, "-c", "local.keep_alive=0"]  # fmt: skip
    result = run_cli(args, cwd=tmp_path, env=llama_env(isolated_env, tmp_path), timeout=400)
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instances"] == 1 and summary["errors"] == 0
    assert "Qwen2.5-Coder-1.5B-Instruct (embedded)" in (out / "summary.md").read_text()


def test_failing_tests_mode_reports_resolved_at_1_and_with_search(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    line = "elif len(line) + 1 + len(word) < width:"

    def edit(new: str) -> dict:
        arguments = {"path": "textkit/wrap.py", "old": line, "new": new}
        return {"content": "The check is off by one.", "tool_calls": [{"name": "edit_file", "arguments": arguments}]}

    turns = [edit(line.replace("< width", "< width - 1")), edit(line.replace("< width", "<= width"))]
    (scripts / "textkit-wrap-exact-width.json").write_text(json.dumps({"turns": turns}))
    out = tmp_path / "out"
    args = ["eval", str(BUNDLED), "--model", f"scripted:{scripts}", "--out", str(out), "--failing-tests"]
    result = run_cli([*args, "--only", "textkit-wrap-exact-width", "-c", FAST_TESTS], cwd=tmp_path, env=isolated_env)
    assert result.returncode == 0, result.stderr + result.stdout
    (row,) = _lines(out / "results.jsonl")
    assert row["resolved"] and (row["candidates"], row["winner"]) == (2, 2)
    (prediction,) = _lines(out / "predictions.jsonl")
    assert patch_paths(prediction["model_patch"]) == ["textkit/wrap.py"]  # the shown tests are not the answer
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["resolved_at_1"], summary["resolved"]) == (0, 1) and summary["failing_tests"] is True
    assert summary["candidates"] == {"total": 2, "searched": 1, "won_by_search": 1}
    assert "resolved@1 (first answer) / with search | 0 / 1" in (out / "summary.md").read_text()
