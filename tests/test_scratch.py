"""The scratch copy candidates are tried in: the working tree as it is, without .git and caches, environments
linked; too big a repository is refused; the folder goes away."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastcode.checkpoint import scratch
from fastcode.checkpoint.scratch import ScratchCopy, ScratchError


def test_the_copy_holds_the_working_tree_and_links_environments(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/mod.py").write_text("x = 1  # uncommitted\n")
    (root / ".git").mkdir()
    (root / ".git/config").write_text("[core]\n")
    (root / "pkg/__pycache__").mkdir()
    (root / ".venv/bin").mkdir(parents=True)
    (root / "link.py").symlink_to("pkg/mod.py")
    with ScratchCopy(root) as copy:
        assert (copy.path / "pkg/mod.py").read_text() == "x = 1  # uncommitted\n"
        assert not (copy.path / ".git").exists() and not (copy.path / "pkg/__pycache__").exists()
        assert (copy.path / ".venv").is_symlink() and (copy.path / ".venv").resolve() == (root / ".venv").resolve()
        assert (copy.path / "link.py").read_text() == "x = 1  # uncommitted\n"
        assert copy.mirror(root / "pkg/mod.py") == copy.path / "pkg/mod.py"
        (copy.path / "pkg/mod.py").write_text("x = 2\n")
        folder = copy.path
    assert not folder.exists() and (root / "pkg/mod.py").read_text() == "x = 1  # uncommitted\n"


def test_a_repository_too_big_to_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}.py").write_text("x\n")
    monkeypatch.setattr(scratch, "MAX_FILES", 3)
    with pytest.raises(ScratchError, match="too big"):
        ScratchCopy(root)
