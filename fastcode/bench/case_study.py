"""The case study every speed figure is measured on: a one-function repo with an off-by-one in `moving_sum` and a
failing test, the scripted trajectories that fix it (one call; five calls the long way) and the fast backend's
latency profile."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fastcode.testing.scripted_server import Latency

# A self-hosted server's profile: like llama.cpp and vLLM, it keeps generated tokens in its KV cache too.
CASE_LATENCY = Latency(ttft_ms=150, decode_tps=200, prefill_tps=5000, cache_completions=True)
STATS = '''"""Running statistics."""


def moving_sum(values, window):
    """Sum of every run of `window` consecutive values."""
    return [sum(values[i : i + window]) for i in range(len(values) - window)]
'''
TEST = """from stats import moving_sum


def test_every_window():
    assert moving_sum([1, 2, 3, 4], 2) == [3, 5, 7]


def test_single_window():
    assert moving_sum([5, 5], 2) == [10]
"""
OLD, NEW = "range(len(values) - window)]", "range(len(values) - window + 1)]"
CASE_SCRIPT = {
    "turns": [
        {
            "content": "1. The last window is skipped: the range stops one short.\n2. Fix the bound.",
            "tool_calls": [
                {"name": "edit_file", "arguments": {"path": "stats.py", "old": OLD, "new": NEW}},
                {"name": "finish", "arguments": {"summary": "Fixed the off-by-one in moving_sum."}},
            ],
        },
    ]
}
LONG_SCRIPT = {
    "turns": [
        {"content": "1. Read.\n2. Fix.", "tool_calls": [{"name": "read_file", "arguments": {"path": "stats.py"}}]},
        {"tool_calls": [{"name": "search", "arguments": {"pattern": "moving_sum"}}]},
        {"tool_calls": [{"name": "edit_file", "arguments": {"path": "stats.py", "old": OLD, "new": NEW}}]},
        {"tool_calls": [{"name": "run", "arguments": {"command": "python -m pytest -q"}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "Fixed."}}]},
    ]
}


def make_case_repo(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "stats.py").write_text(STATS)
    (folder / "test_stats.py").write_text(TEST)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "case"]):
        subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True)
    return folder
