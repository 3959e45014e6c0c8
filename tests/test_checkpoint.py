"""Checkpoints, run diffs and undo, against real git repos (and plain folders) under tmp_path."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastcode.checkpoint.checkpointer import (
    AlreadyUndone,
    Checkpointer,
    FileChange,
    UndoError,
    UndoRefused,
    ensure_excluded,
    undo,
)


@pytest.fixture(autouse=True)
def hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config (autocrlf, signing, hooks) leaks into the tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init(tmp_path / "repo")
    (root / "crlf.txt").write_bytes(b"one\r\ntwo\r\nthree")  # CRLF, no trailing newline
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "gone.txt").write_text("to be deleted\n")
    (root / "keep.txt").write_text("kept\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    os.symlink("keep.txt", root / "link")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root


def user_state(root: Path) -> dict[str, object]:
    """Everything a checkpoint must leave alone: HEAD, the branch, the index, status and the .gitignore."""
    head = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=root, capture_output=True, text=True)
    return {
        "head": head.stdout,
        "branch": git(root, "symbolic-ref", "HEAD"),
        "refs": git(root, "for-each-ref", "refs/heads", "refs/tags"),
        "index": (root / ".git" / "index").read_bytes() if (root / ".git" / "index").exists() else None,
        "cached": git(root, "diff", "--cached"),
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "gitignore": (root / ".gitignore").read_bytes() if (root / ".gitignore").exists() else None,
    }


def start(root: Path, run_id: str = "r1") -> Checkpointer:
    return Checkpointer(root, root / ".fastcode" / "runs" / run_id, run_id)


def run_edits(root: Path, cp: Checkpointer) -> None:
    """What a typical run does: edit tracked files, add an untracked one in a new folder, delete one."""
    cp.before_write(root / "crlf.txt")
    (root / "crlf.txt").write_text("rewritten\n")
    cp.before_write(root / "run.sh")
    (root / "run.sh").write_text("echo bye\n")
    (root / "run.sh").chmod(0o644)
    cp.before_write(root / "new" / "deep" / "made.py")
    (root / "new" / "deep").mkdir(parents=True)
    (root / "new" / "deep" / "made.py").write_text("print('new')\n")
    cp.before_write(None)
    (root / "gone.txt").unlink()
    (root / "link").unlink()


def test_checkpoint_leaves_head_index_and_status_untouched(repo: Path) -> None:
    (repo / "keep.txt").write_text("unstaged edit\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")
    ensure_excluded(repo)  # the engine does this at run start; .fastcode/ then stays out of `git status`
    before = user_state(repo)
    cp = start(repo)
    assert not cp.checkpointed
    cp.before_write(repo / "keep.txt")
    cp.before_write(repo / "other.txt")  # idempotent: still one checkpoint
    assert cp.checkpointed and cp.mode == "git"
    assert user_state(repo) == before
    ref = "refs/fastcode/checkpoints/r1"
    assert git(repo, "show", f"{ref}:keep.txt") == "unstaged edit\n"
    assert git(repo, "show", f"{ref}:untracked.txt") == "untracked\n"
    assert ".fastcode" not in git(repo, "ls-tree", "--name-only", ref)
    assert git(repo, "rev-parse", f"{ref}^") == git(repo, "rev-parse", "HEAD")
    cp.finish()
    assert user_state(repo) == before
    assert not (repo / ".fastcode" / "runs" / "r1" / "index.tmp").exists()


def test_run_diff_then_undo_restores_byte_for_byte(repo: Path) -> None:
    ensure_excluded(repo)
    before = user_state(repo)
    cp = start(repo)
    run_edits(repo, cp)
    changes = cp.finish()
    assert changes.files == [
        FileChange("crlf.txt", "modified"),
        FileChange("gone.txt", "deleted"),
        FileChange("link", "deleted"),
        FileChange("new/deep/made.py", "added"),
        FileChange("run.sh", "modified"),
    ]
    for name in ("crlf.txt", "gone.txt", "new/deep/made.py", "run.sh", "old mode 100755"):
        assert name in changes.diff
    run_dir = repo / ".fastcode" / "runs" / "r1"
    assert (run_dir / "diff.patch").read_bytes().decode() == changes.diff
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["mode"] == "git" and meta["finished"] and meta["undone"] is None
    assert meta["checkpoint"]["ref"] == "refs/fastcode/checkpoints/r1"
    assert git(repo, "rev-parse", "refs/fastcode/after/r1").strip() == meta["after"]["sha"]
    assert {f["path"]: f["status"] for f in meta["files"]}["new/deep/made.py"] == "added"

    result = undo(repo, run_dir)
    assert sorted(result.restored) == ["crlf.txt", "gone.txt", "link", "run.sh"]
    assert result.removed == ["new/deep/made.py"]
    assert (repo / "crlf.txt").read_bytes() == b"one\r\ntwo\r\nthree"
    assert (repo / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (repo / "run.sh").stat().st_mode & stat.S_IXUSR
    assert (repo / "gone.txt").read_text() == "to be deleted\n"
    assert os.readlink(repo / "link") == "keep.txt"
    assert not (repo / "new").exists()
    assert user_state(repo) == before
    assert json.loads((run_dir / "meta.json").read_text())["undone"]["removed"] == ["new/deep/made.py"]
    with pytest.raises(AlreadyUndone):
        undo(repo, run_dir)


def test_undo_refuses_files_edited_since_the_run_unless_forced(repo: Path) -> None:
    cp = start(repo)
    run_edits(repo, cp)
    cp.finish()
    (repo / "crlf.txt").write_text("the user's own edit\n")
    (repo / "new" / "deep" / "made.py").unlink()
    run_dir = repo / ".fastcode" / "runs" / "r1"
    with pytest.raises(UndoRefused) as refused:
        undo(repo, run_dir)
    assert refused.value.files == ["crlf.txt", "new/deep/made.py"]
    assert "crlf.txt" in str(refused.value)
    assert (repo / "crlf.txt").read_text() == "the user's own edit\n"  # nothing was touched
    assert (repo / "run.sh").read_text() == "echo bye\n"
    undo(repo, run_dir, force=True)
    assert (repo / "crlf.txt").read_bytes() == b"one\r\ntwo\r\nthree"
    assert (repo / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"


def test_repo_without_commits(tmp_path: Path) -> None:
    root = init(tmp_path / "fresh")
    (root / "a.txt").write_text("draft\n")
    (root / "staged.txt").write_text("staged\n")
    git(root, "add", "staged.txt")
    before = user_state(root)
    cp = start(root)
    cp.before_write(root / "a.txt")
    (root / "a.txt").write_text("changed\n")
    (root / "b.txt").write_text("new\n")
    changes = cp.finish()
    assert changes.files == [FileChange("a.txt", "modified"), FileChange("b.txt", "added")]
    undo(root, root / ".fastcode" / "runs" / "r1")
    assert (root / "a.txt").read_text() == "draft\n"
    assert not (root / "b.txt").exists()
    assert user_state(root) == before
    assert before["head"] == ""  # still no commits, no branch created


def test_unstaged_changes_are_restored_not_reset_to_head(repo: Path) -> None:
    (repo / "keep.txt").write_text("work in progress\n")
    (repo / "gone.txt").write_text("staged version\n")
    git(repo, "add", "gone.txt")
    (repo / "gone.txt").write_text("unstaged on top of staged\n")
    ensure_excluded(repo)
    before = user_state(repo)
    cp = start(repo)
    cp.before_write(None)
    (repo / "keep.txt").write_text("agent\n")
    (repo / "gone.txt").write_text("agent\n")
    changes = cp.finish()
    assert [f.path for f in changes.files] == ["gone.txt", "keep.txt"]
    assert "-work in progress" in changes.diff
    undo(repo, repo / ".fastcode" / "runs" / "r1")
    assert (repo / "keep.txt").read_text() == "work in progress\n"
    assert (repo / "gone.txt").read_text() == "unstaged on top of staged\n"
    assert git(repo, "show", ":gone.txt") == "staged version\n"
    assert user_state(repo) == before


def test_ignored_files_are_never_touched(repo: Path) -> None:
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_bytes(b"\0old")
    (repo / "debug.log").write_text("old log\n")
    cp = start(repo)
    cp.before_write(None)
    (repo / "build" / "out.bin").write_bytes(b"\0new")
    (repo / "debug.log").unlink()
    (repo / "fresh.log").write_text("new log\n")
    (repo / "keep.txt").write_text("edited\n")
    changes = cp.finish()
    assert changes.files == [FileChange("keep.txt", "modified")]
    undo(repo, repo / ".fastcode" / "runs" / "r1")
    assert (repo / "keep.txt").read_text() == "kept\n"
    assert (repo / "build" / "out.bin").read_bytes() == b"\0new"
    assert not (repo / "debug.log").exists()
    assert (repo / "fresh.log").read_text() == "new log\n"


def test_a_run_without_writes_has_an_empty_diff(repo: Path) -> None:
    cp = start(repo)
    changes = cp.finish()
    assert changes.diff == "" and changes.files == [] and not cp.checkpointed
    run_dir = repo / ".fastcode" / "runs" / "r1"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["checkpointed"] is False and meta["checkpoint"] is None
    assert (run_dir / "diff.patch").read_text() == ""
    assert undo(repo, run_dir).restored == []
    assert "refs/fastcode" not in git(repo, "for-each-ref")


def killed(cp: Checkpointer, seconds_ago: float) -> Path:
    """Make `cp` look like a run killed `seconds_ago`: no more heartbeats, the last one back then."""
    cp._stopped.set()
    time.sleep(0.05)  # a heartbeat in flight lands before the clock is set back
    then = time.time() - seconds_ago
    for name in ("alive", "meta.json", "trace.jsonl"):
        if (cp.run_dir / name).exists():
            os.utime(cp.run_dir / name, (then, then))
    return cp.run_dir


def test_a_killed_run_is_undone_from_its_checkpoint_and_says_so(repo: Path) -> None:
    cp = start(repo)
    cp.before_write(repo / "keep.txt")
    (repo / "keep.txt").write_text("crashed mid-run\n")
    (repo / "written_by_a_command.txt").write_text("left by a killed command\n")
    run_dir = killed(cp, seconds_ago=0)
    result = undo(repo, run_dir)
    assert result.restored == ["keep.txt"] and result.removed == ["written_by_a_command.txt"]
    assert "did not finish" in result.warnings[0]
    assert (repo / "keep.txt").read_text() == "kept\n"


def test_a_killed_run_whose_files_were_edited_later_needs_force(repo: Path) -> None:
    cp = start(repo)
    cp.before_write(repo / "keep.txt")
    (repo / "keep.txt").write_text("the user's edit after the run was killed\n")
    run_dir = killed(cp, seconds_ago=60)
    with pytest.raises(UndoRefused, match=r"keep\.txt"):
        undo(repo, run_dir)
    assert undo(repo, run_dir, force=True).restored == ["keep.txt"]


def test_copy_mode_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "crlf.txt").write_bytes(b"one\r\ntwo")
    (root / "tool.sh").write_bytes(b"#!/bin/sh\n")
    (root / "tool.sh").chmod(0o755)
    (root / "gone.txt").write_text("bye\n")
    (root / "blob.bin").write_bytes(b"\0\1\2")
    cp = start(root)
    assert cp.mode == "copy"
    for name in ("crlf.txt", "tool.sh", "gone.txt", "blob.bin", "sub/dir/new.txt"):
        cp.before_write(root / name)
    cp.before_write(Path("crlf.txt"))  # a relative path, already backed up
    cp.before_write(None)
    (root / "crlf.txt").write_bytes(b"one\r\nTWO\r\n")
    (root / "tool.sh").write_text("echo replaced\n")
    (root / "gone.txt").unlink()
    (root / "blob.bin").write_bytes(b"\0\x09")
    (root / "sub" / "dir").mkdir(parents=True)
    (root / "sub" / "dir" / "new.txt").write_text("hello\n")
    changes = cp.finish()
    assert changes.files == [
        FileChange("blob.bin", "modified"),
        FileChange("crlf.txt", "modified"),
        FileChange("gone.txt", "deleted"),
        FileChange("sub/dir/new.txt", "added"),
        FileChange("tool.sh", "modified"),
    ]
    assert "-two\n\\ No newline at end of file\n+TWO\r\n" in changes.diff
    assert "Binary files a/blob.bin and b/blob.bin differ" in changes.diff
    assert "+++ b/sub/dir/new.txt\n@@ -0,0 +1 @@\n+hello\n" in changes.diff
    run_dir = root / ".fastcode" / "runs" / "r1"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["mode"] == "copy" and meta["commands_without_git"] == 1

    (root / "tool.sh").write_text("user edit\n")
    with pytest.raises(UndoRefused) as refused:
        undo(root, run_dir)
    assert refused.value.files == ["tool.sh"]
    result = undo(root, run_dir, force=True)
    assert "shell command" in result.warnings[0]
    assert result.removed == ["sub/dir/new.txt"]
    assert (root / "crlf.txt").read_bytes() == b"one\r\ntwo"
    assert (root / "tool.sh").read_bytes() == b"#!/bin/sh\n"
    assert (root / "tool.sh").stat().st_mode & stat.S_IXUSR
    assert (root / "gone.txt").read_text() == "bye\n"
    assert (root / "blob.bin").read_bytes() == b"\0\1\2"
    assert not (root / "sub").exists()
    with pytest.raises(AlreadyUndone):
        undo(root, run_dir)


def test_ensure_excluded_is_idempotent_and_leaves_gitignore_alone(tmp_path: Path) -> None:
    root = init(tmp_path / "r")
    (root / ".gitignore").write_text("node_modules/\n")
    exclude = root / ".git" / "info" / "exclude"
    exclude.write_text("# user's own\n*.swp")  # no trailing newline
    ensure_excluded(root)
    ensure_excluded(root)
    start(root)  # the Checkpointer ensures it too
    assert exclude.read_text() == "# user's own\n*.swp\n.fastcode/\n"
    assert (root / ".gitignore").read_text() == "node_modules/\n"
    (root / ".fastcode" / "runs").mkdir(parents=True)
    (root / ".fastcode" / "runs" / "x").write_text("x")
    assert git(root, "status", "--porcelain") == "?? .gitignore\n"

    plain = tmp_path / "plain"
    plain.mkdir()
    ensure_excluded(plain)
    assert list(plain.iterdir()) == []


def test_files_behind_fastcodes_own_output_are_not_the_runs_changes(repo: Path) -> None:
    """`fastcode exec ... > out.txt 2> err.txt` in the repo: the logs neither block undo nor get rewritten by it."""
    script = (
        "import sys; from pathlib import Path; from fastcode.checkpoint.checkpointer import Checkpointer\n"
        "root = Path.cwd(); cp = Checkpointer(root, root / '.fastcode/runs/r1', 'r1')\n"
        "cp.before_write(root / 'keep.txt'); (root / 'keep.txt').write_text('edited\\n')\n"
        "print('a log line'); sys.stderr.write('an error line\\n'); sys.stdout.flush()\n"
        "print([f.path for f in cp.finish().files]); sys.stdout.flush()\n"
        "print('written after the run')\n"
    )
    with open(repo / "out.txt", "w") as out, open(repo / "err.txt", "w") as err:
        subprocess.run([sys.executable, "-c", script], cwd=repo, stdout=out, stderr=err, check=True)
    assert "['keep.txt']" in (repo / "out.txt").read_text()
    meta = json.loads((repo / ".fastcode/runs/r1/meta.json").read_text())
    assert meta["own_output"] == ["err.txt", "out.txt"]
    assert "out.txt" not in (repo / ".fastcode/runs/r1/diff.patch").read_text()
    result = undo(repo, repo / ".fastcode/runs/r1")
    assert result.restored == ["keep.txt"]
    assert "written after the run" in (repo / "out.txt").read_text()
    assert (repo / "err.txt").read_text() == "an error line\n"


def test_a_file_name_that_is_not_utf8_is_restored(repo: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: not valid UTF-8
    (repo / name).write_text("before\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "latin-1 name")
    cp = start(repo)
    cp.before_write(repo / name)
    (repo / name).write_text("after\n")
    (repo / os.fsdecode(b"new\xff.txt")).write_text("added\n")
    changes = cp.finish()
    assert {f.path for f in changes.files} == {name, os.fsdecode(b"new\xff.txt")}
    result = undo(repo, cp.run_dir)
    assert result.restored == [name] and result.removed == [os.fsdecode(b"new\xff.txt")]
    assert (repo / name).read_text() == "before\n"
    assert not (repo / os.fsdecode(b"new\xff.txt")).exists()


def test_old_checkpoints_are_pruned_and_undo_list_says_so(repo: Path, isolated_env) -> None:
    from conftest import run_cli

    from fastcode.checkpoint import checkpointer

    keep = checkpointer.KEEP_RUNS
    for i in range(keep + 3):
        cp = start(repo, f"2026{i:04d}")
        cp.before_write(repo / "keep.txt")
        (repo / "keep.txt").write_text(f"run {i}\n")
        cp.finish()
        cp._wait_for_commit()
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/fastcode/checkpoints/").split()
    assert len(refs) == keep and refs[0].endswith(f"2026{3:04d}")
    listed = run_cli(["undo", "--list"], cwd=repo, env=isolated_env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == keep + 3
    assert "checkpoint pruned" in lines[0] and lines[-1].endswith("changed 1 file")


def test_a_commit_the_run_made_is_undone(repo: Path) -> None:
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    (repo / "keep.txt").write_text("staged by the user before the run\n")
    git(repo, "add", "keep.txt")
    staged = git(repo, "diff", "--cached", "--stat")
    cp = start(repo)
    cp.before_write(None)  # a `run` call: git commit -am
    (repo / "gone.txt").write_text("changed by the run\n")
    git(repo, "commit", "-qam", "the run's commit")
    cp.finish()
    assert git(repo, "rev-parse", "HEAD") != head
    result = undo(repo, cp.run_dir)
    assert git(repo, "rev-parse", "HEAD") == head
    assert any("moved back" in w for w in result.warnings)
    assert (repo / "gone.txt").read_text() == "to be deleted\n"
    assert git(repo, "diff", "--cached", "--stat") == staged  # the user's staged change is staged again
    assert status == "" and "gone.txt" not in git(repo, "status", "--porcelain")


def test_an_ignored_file_the_run_edited_is_restored(repo: Path) -> None:
    (repo / "debug.log").write_text("the user's log\n")  # *.log is in .gitignore
    (repo / "build").mkdir()
    cp = start(repo)
    cp.before_write(repo / "debug.log")
    (repo / "debug.log").write_text("overwritten by the run\n")
    cp.before_write(repo / "build" / "out.bin")
    (repo / "build" / "out.bin").write_bytes(b"\0new")
    changes = cp.finish()
    assert {f.path for f in changes.files} == {"debug.log", "build/out.bin"}
    assert "overwritten by the run" in changes.diff
    result = undo(repo, cp.run_dir)
    assert (repo / "debug.log").read_text() == "the user's log\n"
    assert not (repo / "build" / "out.bin").exists()
    assert "debug.log" in result.restored and "build/out.bin" in result.removed


def test_large_untracked_files_stay_out_of_checkpoints_but_file_tool_edits_are_undone(repo: Path) -> None:
    from fastcode.checkpoint.checkpointer import LARGE_UNTRACKED

    data = b"0123456789" * (LARGE_UNTRACKED // 10 + 1)
    (repo / "data.bin").write_bytes(data)
    cp = start(repo)
    cp.before_write(repo / "keep.txt")
    (repo / "keep.txt").write_text("edited\n")
    cp.before_write(repo / "data.bin")
    (repo / "data.bin").write_bytes(b"truncated by the run")
    changes = cp.finish()
    tree = json.loads((cp.run_dir / "meta.json").read_text())["checkpoint"]["tree"]
    assert "data.bin" not in git(repo, "ls-tree", "-r", "--name-only", tree)  # not stored in .git each run
    assert {f.path for f in changes.files} == {"keep.txt", "data.bin"}
    undo(repo, cp.run_dir)
    assert (repo / "data.bin").read_bytes() == data and (repo / "keep.txt").read_text() == "kept\n"


def test_undo_says_what_it_cannot_undo_outside_git(tmp_path: Path, isolated_env) -> None:
    from conftest import run_cli

    root = tmp_path / "plain"
    root.mkdir()
    (root / "a.txt").write_text("before\n")
    cp = start(root)
    cp.before_write(root / "a.txt")
    (root / "a.txt").write_text("after\n")
    cp.before_write(None)  # a shell command: its effects are unknown without git
    cp.finish()
    (cp.run_dir / "trace.jsonl").write_text("")
    result = run_cli(["undo", "--repo", str(root)], cwd=root, env=isolated_env)
    assert result.returncode == 0, result.stderr
    assert "note: 1 shell command(s) ran without git" in result.stdout and "restored a.txt" in result.stdout


def test_undo_refuses_a_run_that_is_still_going_and_a_refusal_changes_nothing(repo: Path) -> None:
    cp = start(repo)
    cp.before_write(repo / "keep.txt")
    (repo / "keep.txt").write_text("the run is still writing\n")
    with pytest.raises(UndoError, match="still running"):
        undo(repo, cp.run_dir)
    run_dir = killed(cp, seconds_ago=60)
    (repo / "keep.txt").write_text("the user's edit after the kill\n")
    for _ in range(2):  # refused twice: the first refusal must not make the second one pass
        with pytest.raises(UndoRefused):
            undo(repo, run_dir)
    assert (repo / "keep.txt").read_text() == "the user's edit after the kill\n"
