"""Checkpoints without git: back up each file the first time a run touches it, diff with difflib, restore.

The manifest (path -> backup file name, mode, directories the run created) lives in the run's meta.json and is
owned by the caller; this module only reads and extends it. Shell commands cannot be tracked here.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastcode.checkpoint.git_store import Status


@dataclass(frozen=True)
class CopyChange:
    path: str
    status: Status
    sha256: str | None
    """Of the file as the run left it; None when the run deleted it."""


class CopyStore:
    """Backups under `backup_dir`, indexed by `manifest` (a dict inside meta.json, mutated in place)."""

    def __init__(self, root: Path, backup_dir: Path, manifest: dict[str, dict[str, Any]]) -> None:
        self.root = root
        self.backup_dir = backup_dir
        self.manifest = manifest

    def key(self, path: Path) -> str:
        """The manifest key: a POSIX path relative to the root, or an absolute path outside it."""
        full = Path(os.path.abspath(self.root / path))
        return full.relative_to(self.root).as_posix() if full.is_relative_to(self.root) else full.as_posix()

    def full(self, key: str) -> Path:
        return Path(key) if os.path.isabs(key) else self.root / key

    def touch(self, path: Path) -> bool:
        """Back up `path` if this is the first time the run touches it; True when the manifest grew."""
        key = self.key(path)
        full = self.full(key)
        if key in self.manifest or full.is_dir():
            return False
        entry: dict[str, Any] = {"backup": None, "mode": None, "created_dirs": []}
        if full.is_file():
            self.backup_dir.mkdir(parents=True, exist_ok=True)
            name = f"{len(self.manifest):05d}"
            shutil.copyfile(full, self.backup_dir / name)
            entry.update(backup=name, mode=stat.S_IMODE(full.stat().st_mode))
        else:
            for parent in full.parents:
                if parent.exists():
                    break
                entry["created_dirs"].append(self.key(parent))
        self.manifest[key] = entry
        return True

    def before(self, key: str) -> bytes | None:
        name = self.manifest[key]["backup"]
        return None if name is None else (self.backup_dir / name).read_bytes()

    def changes(self) -> tuple[list[CopyChange], str]:
        """What the run changed among the touched files, and a unified diff of it."""
        changes, patches = [], []
        for key in sorted(self.manifest):
            before, full = self.before(key), self.full(key)
            after = full.read_bytes() if full.is_file() else None
            if before == after:
                continue
            status: Status = "added" if before is None else "deleted" if after is None else "modified"
            changes.append(CopyChange(key, status, None if after is None else _sha256(after)))
            patches.append(unified_diff(key, before, after))
        return changes, "".join(patches)

    def edited(self, files: list[dict[str, Any]]) -> list[str]:
        """Paths whose content on disk differs from how the run left them."""
        return sorted(f["path"] for f in files if _disk_sha256(self.full(f["path"])) != f["sha256"])

    def restore(self, files: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """Put back each file's original bytes and mode; delete the files the run created (and their dirs)."""
        restored, removed = [], []
        for f in files:
            key, full = f["path"], self.full(f["path"])
            entry, before = self.manifest[key], self.before(key)
            if before is None:
                if full.is_file() or full.is_symlink():
                    full.unlink()
                    removed.append(key)
                for rel in entry["created_dirs"]:  # deepest first, as recorded
                    with contextlib.suppress(OSError):
                        self.full(rel).rmdir()
                continue
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(before)
            os.chmod(full, entry["mode"])
            restored.append(key)
        return restored, removed


def unified_diff(path: str, before: bytes | None, after: bytes | None) -> str:
    """A git-style patch for one file; binary content gets a one-line notice."""
    a = "/dev/null" if before is None else f"a/{path}"
    b = "/dev/null" if after is None else f"b/{path}"
    head = f"diff --git a/{path} b/{path}\n"
    head += "new file\n" if before is None else "deleted file\n" if after is None else ""
    old, new = _text(before), _text(after)
    if old is None or new is None:
        return f"{head}Binary files {a} and {b} differ\n"
    out = [head]
    for line in difflib.unified_diff(_lines(old), _lines(new), a, b):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return ""
    if b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    """Split on "\\n" only (str.splitlines would also split on "\\r", form feeds, …), keeping the ends."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _disk_sha256(path: Path) -> str | None:
    return _sha256(path.read_bytes()) if path.is_file() else None
