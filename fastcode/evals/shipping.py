"""What an instance needs on a machine that shares no file system with the driver, packed into bytes and back.

- A repository: a git repository travels as a git bundle of all its refs (HEAD included), so any `base_commit` the
  suite names resolves on the other side; a plain folder as a tar of exactly what a local run would copy (the same
  ignore list). `unpack_repo` rebuilds it in a folder of the worker, which then serves as the instance's
  `repo_path`, so `Workspace.create` makes the same start state it makes locally.
- An instance's output folder (`instances/<id>/`): its files as a name -> bytes map, written back by the driver.

Standard library and git only: both sides of a Ray run use it, and it is tested without Ray.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastcode.evals.workspace import IGNORED, WorkspaceError, git, is_git_repo


@dataclass(frozen=True)
class RepoPack:
    """One repository as bytes: `git-bundle` or `tar` (a plain folder)."""

    kind: Literal["git-bundle", "tar"]
    data: bytes
    source: str
    """The driver's path, for messages."""


def pack_repo(path: Path) -> RepoPack:
    """The repository at `path` as bytes; WorkspaceError when it cannot be packed (not a folder, no commits)."""
    if not path.is_dir():
        raise WorkspaceError(f"repo_path {path} is not a folder")
    if is_git_repo(path):
        with tempfile.TemporaryDirectory(prefix="fastcode-bundle-") as tmp:
            bundle = Path(tmp) / "repo.bundle"
            try:
                git(path, "bundle", "create", "--quiet", str(bundle), "HEAD", "--all")
            except WorkspaceError as exc:
                raise WorkspaceError(f"cannot bundle {path}: {exc}") from None
            return RepoPack("git-bundle", bundle.read_bytes(), str(path))
    buffer = io.BytesIO()
    ignore = shutil.ignore_patterns(*IGNORED)

    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parent, name = os.path.split(info.name)
        return None if ignore(parent, [name]) else info

    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for child in sorted(path.iterdir()):
            archive.add(child, arcname=child.name, filter=skip)
    return RepoPack("tar", buffer.getvalue(), str(path))


def unpack_repo(pack: RepoPack, dest: Path) -> Path:
    """Rebuild the packed repository at `dest` (which must not exist); returns `dest`."""
    if pack.kind == "tar":
        dest.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(pack.data)) as archive:
            archive.extractall(dest, filter="data")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    bundle = dest.with_name(dest.name + ".bundle")
    bundle.write_bytes(pack.data)
    try:
        # A mirror keeps every ref (branches, tags) under its own name, so base_commit resolves as it does locally.
        git(dest.parent, "clone", "--quiet", "--mirror", str(bundle), str(dest / ".git"))
        git(dest, "config", "core.bare", "false")
    finally:
        bundle.unlink(missing_ok=True)
    return dest


def collect_files(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder`, by its path relative to it."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def write_files(files: dict[str, bytes], folder: Path) -> None:
    """Write `collect_files`' output under `folder`; a name that would leave the folder is skipped."""
    root = folder.resolve()
    for name, data in files.items():
        target = (folder / name).resolve()
        if not target.is_relative_to(root) or target == root:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
