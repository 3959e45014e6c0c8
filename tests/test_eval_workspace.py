"""Workspaces: a private git copy at the start state; the source repository is only read."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import DATA, git, make_git_repo

from fastcode.evals.instances import Instance
from fastcode.evals.workspace import Workspace, WorkspaceError

FIX = "\n".join(
    [
        "diff --git a/mathutils/stats.py b/mathutils/stats.py",
        "--- a/mathutils/stats.py",
        "+++ b/mathutils/stats.py",
        "@@ -4,8 +4,8 @@",
        " def moving_sum(values: list[float], window: int) -> list[float]:",
        '     """Return the sum of every run of `window` consecutive values, in order."""',
        "     if window <= 0:",
        '         raise ValueError("window must be positive")',
        "-    return [sum(values[i : i + window]) for i in range(len(values) - window)]",
        "+    return [sum(values[i : i + window]) for i in range(len(values) - window + 1)]",
        " ",
        " ",
        " def mean(values: list[float]) -> float:",
        "",
    ]
)


def _snapshot(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _instance(repo: Path, **fields) -> Instance:
    return Instance(instance_id="t-1", problem_statement="p", repo_path=str(repo), test_cmd="pytest", **fields)


def test_git_source_is_cloned_at_base_commit_without_future_history(tmp_path: Path) -> None:
    source = make_git_repo(DATA / "sample_repo", tmp_path / "source")
    base = git(source, "rev-parse", "HEAD").strip()
    (source / "mathutils" / "stats.py").write_text("# the future\n")
    git(source, "commit", "-qam", "later commit")
    git(source, "tag", "v2")
    before = _snapshot(source)

    ws = Workspace.create(_instance(source, base_commit=base), tmp_path / "copy")
    assert ws.base == base
    assert "moving_sum" in (ws.path / "mathutils" / "stats.py").read_text()
    assert git(ws.path, "log", "--all", "--format=%s").split("\n")[0] == "initial"
    assert git(ws.path, "remote") == ""

    (ws.path / "mathutils" / "stats.py").write_text("broken\n")
    (ws.path / "new_file.txt").write_text("new\n")
    (ws.path / "__pycache__").mkdir()
    (ws.path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (ws.path / ".fastcode").mkdir()
    (ws.path / ".fastcode" / "trace.jsonl").write_text("{}\n")
    patch = ws.diff()
    assert "+broken" in patch and "new_file.txt" in patch
    assert "__pycache__" not in patch and ".fastcode" not in patch
    assert _snapshot(source) == before


def test_plain_folder_with_the_fix_becomes_a_one_commit_repo_at_the_buggy_state(tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    subprocess.run(["cp", "-r", str(DATA / "sample_repo"), str(fixed)], check=True)
    stats = fixed / "mathutils" / "stats.py"
    stats.write_text(stats.read_text().replace("len(values) - window)", "len(values) - window + 1)"))
    before = _snapshot(fixed)

    ws = Workspace.create(_instance(fixed, base_has_fix=True, patch=FIX), tmp_path / "copy")
    assert "range(len(values) - window)]" in (ws.path / "mathutils" / "stats.py").read_text()
    assert git(ws.path, "log", "--all", "--oneline").count("\n") == 1  # no fix anywhere in history
    ws.apply(FIX)
    assert ws.diff().count("+    return") == 1
    assert _snapshot(fixed) == before and not (fixed / ".git").exists()


def test_broken_sources_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="is not a folder"):
        Workspace.create(_instance(tmp_path / "missing"), tmp_path / "a")
    with pytest.raises(WorkspaceError, match="not a git repository"):
        Workspace.create(_instance(DATA / "sample_repo", base_commit="abc123"), tmp_path / "b")
    source = make_git_repo(DATA / "sample_repo", tmp_path / "source")
    with pytest.raises(WorkspaceError, match="base_commit 'nope' is not a commit"):
        Workspace.create(_instance(source, base_commit="nope"), tmp_path / "c")
    ws = Workspace.create(_instance(source), tmp_path / "d")
    with pytest.raises(WorkspaceError, match="gold patch does not apply"):
        ws.apply(FIX.replace("window)]", "windowXX)]"), what="gold patch")
