"""Repositories and output folders packed into bytes and back (what a Ray task receives and returns)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fastcode.evals.instances import Instance
from fastcode.evals.shipping import collect_files, pack_repo, unpack_repo, write_files
from fastcode.evals.workspace import IDENTITY, Workspace, WorkspaceError


def _git(cwd: Path, *args: str) -> str:
    env = dict(os.environ) | IDENTITY
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_a_git_repository_travels_with_every_ref(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("v = 1\n")
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", "one")
    _git(repo, "tag", "first")
    _git(repo, "checkout", "--quiet", "-b", "feature")
    (repo / "a.py").write_text("v = 2\n")
    _git(repo, "commit", "--quiet", "-am", "two")
    _git(repo, "checkout", "--quiet", "main")
    (repo / "a.py").write_text("v = 'uncommitted'\n")  # a local run clones: uncommitted work is not part of it

    feature = _git(repo, "rev-parse", "feature").strip()

    pack = pack_repo(repo)
    assert pack.kind == "git-bundle"
    source = unpack_repo(pack, tmp_path / "elsewhere" / "source")
    for number, (rev, expected) in enumerate([("first", "v = 1\n"), (feature, "v = 2\n"), (None, "v = 1\n")]):
        copies = []
        for where in (repo, source):  # the same start state as a local run makes from the original
            instance = Instance(instance_id="x", problem_statement="", repo_path=str(where), base_commit=rev)
            copies.append(Workspace.create(instance, tmp_path / f"copy-{number}-{where.name}"))
        assert [(c.path / "a.py").read_text() for c in copies] == [expected, expected]
        assert copies[0].base == copies[1].base


def test_a_plain_folder_travels_as_a_local_copy_would(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "pkg" / "__pycache__").mkdir(parents=True)
    (folder / "pkg" / "mod.py").write_text("x = 1\n")
    (folder / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".fastcode").mkdir()
    (folder / ".fastcode" / "state").write_text("private")
    pack = pack_repo(folder)
    assert pack.kind == "tar"
    source = unpack_repo(pack, tmp_path / "node" / "source")
    assert sorted(p.relative_to(source).as_posix() for p in source.rglob("*")) == ["pkg", "pkg/mod.py"]


def test_a_folder_that_is_not_there_cannot_be_packed(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a folder"):
        pack_repo(tmp_path / "missing")


def test_output_files_come_back_and_never_leave_their_folder(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "trace.jsonl").write_text("{}\n")
    (logs / "sub" / "tests.log").write_text("1 passed\n")
    files = collect_files(logs)
    assert files == {"sub/tests.log": b"1 passed\n", "trace.jsonl": b"{}\n"}
    target = tmp_path / "driver" / "instances" / "x"
    write_files(files | {"../../escape.txt": b"no", "/etc/evil": b"no"}, target)
    assert collect_files(target) == files
    assert not (tmp_path / "driver" / "escape.txt").exists()
