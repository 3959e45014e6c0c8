"""A scratch copy of the repository where candidate fixes are tried, so the user's tree is written only by a winner.

The copy holds the working tree as it is now (uncommitted changes included) in a private temporary folder, without
`.git`, fastcode's own folder and caches; environments inside the repository (`.venv`, `node_modules`, …) are linked,
not copied, so a test command that uses them still works. A candidate is applied to the copy, tested, then taken
back (`Attempt`), so one copy serves a whole search. The copy is removed when the search ends; a kill leaves only
a folder in the temporary directory, never a change in the repository.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from fastcode.core.paths import scratch_root

SKIPPED = frozenset({".git", ".fastcode", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hg"})
LINKED = frozenset({".venv", "venv", "env", ".tox", ".nox", "node_modules", "target", ".eggs"})
MAX_FILES = 20_000
MAX_BYTES = 300 * 1024 * 1024


class ScratchError(Exception):
    """The repository cannot be copied (too big, unreadable): the search does not run."""


class ScratchCopy:
    """A copy of `root` under a temporary folder; use as a context manager (the folder is removed on exit)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._parent = Path(tempfile.mkdtemp(prefix="search-", dir=scratch_root(root)))
        self.path = self._parent / root.name
        try:
            _copy(root, self.path)
        except BaseException:
            self.remove()
            raise

    def __enter__(self) -> ScratchCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self._parent, ignore_errors=True)

    def mirror(self, path: Path) -> Path:
        """The copy's counterpart of a path inside the repository."""
        return self.path / path.relative_to(self.root)


def _copy(root: Path, dest: Path) -> None:
    files = size = 0
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        target = dest / here.relative_to(root)
        target.mkdir(exist_ok=True)
        for name in list(dirs):
            if name in SKIPPED:
                dirs.remove(name)
            elif name in LINKED or (here / name).is_symlink():
                dirs.remove(name)
                (target / name).symlink_to(os.readlink(here / name) if (here / name).is_symlink() else here / name)
        for name in names:
            source = here / name
            if source.is_symlink():
                (target / name).symlink_to(os.readlink(source))
                continue
            try:
                size += source.stat().st_size
                files += 1
                if files > MAX_FILES or size > MAX_BYTES:
                    raise ScratchError(f"the repository is too big to copy for a search (over {MAX_FILES} files "
                                       f"or {MAX_BYTES // 2**20} MB outside .git and environments)")  # fmt: skip
                shutil.copy2(source, target / name)
            except OSError as exc:
                raise ScratchError(f"cannot copy {source.relative_to(root)} for a search: {exc.strerror}") from exc
