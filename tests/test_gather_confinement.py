"""Issue 16: context gathering follows the tools' path rules — nothing outside the repository reaches the prompt,
through a symlink in the repo map or a `../file.py:1:` line in the test output."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from conftest import git, run_cli

from fastcode.context.gather import gather_context
from fastcode.core.config import ContextSection
from fastcode.core.emitter import Emitter


def test_gathered_context_never_shows_files_outside_the_repository(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("def leaked_secret_function():\n    return 'OUTSIDE-CANARY'\n")
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "app.py").write_text("def secret():\n    return 1\n")
    (repo / "linked.py").symlink_to(outside / "secret.py")
    # A failing test whose output points at the file outside, as a traceback line would.
    (repo / "tests" / "test_app.py").write_text(
        "def test_it():\n    print('../outside/secret.py:1: in leaked_secret_function')\n"
        '    print(f\'{__import__("os").path.abspath("../outside/secret.py")}:2: here\')\n'
        "    assert leaked_secret_function() == 2\n"
    )
    events: asyncio.Queue = asyncio.Queue()
    emit = Emitter("r", tmp_path / "trace.jsonl", events)
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    task = "fix the failing test in linked.py: leaked_secret_function and secret"
    found = asyncio.run(gather_context(repo, task, ContextSection(), command, emit))
    text = "\n".join(f"{s.title}\n{s.body}" for s in found.sections)
    assert found.tests_failing
    assert "OUTSIDE-CANARY" not in text and "return 'OUTSIDE" not in text
    assert "def secret" in text or "app.py" in text  # the repository's own code still shows


def _conftest_canary(repo: Path) -> Path:
    (repo / "conftest.py").write_text("from pathlib import Path\nPath('conftest_ran.txt').touch()\n")
    git(repo, "add", "conftest.py")
    git(repo, "commit", "-qm", "conftest")
    return repo / "conftest_ran.txt"


def _finish_only(scripted) -> str:
    finish = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}
    return scripted({"turns": [finish, finish, finish]}).base_url


def test_gathering_runs_the_tests_only_for_tasks_about_them(sample_repo, isolated_env, scripted) -> None:
    canary = _conftest_canary(sample_repo)
    quiet = ["--model", "m", "-c", "agent.edit_first='never'", "-c", "agent.auto_test=false"]
    result = run_cli(["exec", "add a docstring to mean", "--base-url", _finish_only(scripted), *quiet],
                     cwd=sample_repo, env=isolated_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not canary.exists()  # the repository's code did not run before the model was asked anything

    result = run_cli(["exec", "fix the failing test", "--base-url", _finish_only(scripted), *quiet],
                     cwd=sample_repo, env=isolated_env)  # fmt: skip
    assert canary.exists()


def test_gathering_asks_before_running_the_tests_where_commands_need_approval(
    sample_repo, isolated_env, scripted
) -> None:
    canary = _conftest_canary(sample_repo)
    args = ["exec", "fix the failing test", "--base-url", _finish_only(scripted), "--model", "m",
            "--approval", "auto-edit", "-c", "agent.edit_first='never'", "-c", "agent.auto_test=false"]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert not canary.exists()
    assert "declined run (approval needed, no terminal)" in result.stderr
