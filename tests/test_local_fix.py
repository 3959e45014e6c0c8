"""The product on a real model: no endpoint configured, the embedded Qwen2.5-Coder-1.5B-Instruct on the real
llama-server fixes a bug in a small repository and `fastcode exec` exits 0 (marked `llama`; skipped with the reason
only where llama-server or the model is not installed)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DATA, git, make_git_repo, run_cli
from llama_support import llama_env, needs_llama

pytestmark = needs_llama


def test_the_embedded_model_fixes_the_failing_test(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    repo = make_git_repo(DATA / "calc_repo", tmp_path / "calc")
    env = llama_env(isolated_env, tmp_path)
    args = ["exec", "fix the failing test", "--json", "--timeout", "600", "-c", "local.keep_alive=0"]
    run = run_cli(args, cwd=repo, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "embedded Qwen2.5-Coder-1.5B-Instruct" in run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["status"] == "finished"
    assert "return a + b" in (repo / "calc/ops.py").read_text()
    assert git(repo, "diff", "--stat", "--", "test_ops.py") == ""  # the test was not touched
    events = [json.loads(line) for line in run.stdout.splitlines()]
    calls = [e for e in events if e["type"] == "model_call_finished" and not e.get("warmup")]
    assert calls and all(c["tool_mode"] == "constrained" for c in calls)
    assert [e["passed"] for e in events if e["type"] == "tests_run"][-1] is True
