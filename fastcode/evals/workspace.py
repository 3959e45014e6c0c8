"""A throwaway git copy of an instance's repository at its start state. The source is only ever read.

A git source is cloned (then its remote and refs are dropped, so `git log --all` shows no future commits); a plain
folder is copied and committed. With `base_has_fix`, the files at `base_commit` are exported instead and
`test_patch` and `patch` reverse-applied, so the copy's only commit is the buggy start state (no fix in history).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from fastcode.evals.instances import Instance

IDENTITY = {
    "GIT_AUTHOR_NAME": "fastcode-eval",
    "GIT_AUTHOR_EMAIL": "eval@fastcode.invalid",
    "GIT_COMMITTER_NAME": "fastcode-eval",
    "GIT_COMMITTER_EMAIL": "eval@fastcode.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
}
IGNORED = (".git", ".fastcode", "__pycache__", ".pytest_cache", ".ruff_cache", "*.pyc")
"""Never copied from a plain folder, and kept out of the copy's diffs."""
_EXCLUDES = "\n".join([".fastcode/", "__pycache__/", "*.pyc", ".pytest_cache/", ".ruff_cache/"]) + "\n"
_DIFF_PATHS = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)


class WorkspaceError(Exception):
    """The instance's repository cannot be prepared: one line naming what went wrong."""


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | IDENTITY
    result = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise WorkspaceError(f"git {args[0]}: {message[-1] if message else f'exit {result.returncode}'}")
    return result.stdout.decode(errors="replace")


def is_git_repo(path: Path) -> bool:
    return (path / ".git").exists()


def patch_paths(patch: str) -> list[str]:
    """Files a unified diff touches (both sides of renames)."""
    paths: list[str] = []
    for pair in _DIFF_PATHS.findall(patch):
        for path in pair:
            if path not in paths:
                paths.append(path)
    return paths


@dataclass
class Workspace:
    path: Path
    base: str
    """The sha of the start commit."""

    @classmethod
    def create(cls, instance: Instance, dest: Path) -> Workspace:
        """Build the start state of `instance` in `dest` (which must not exist)."""
        source = Path(instance.repo_path)
        if not source.is_dir():
            raise WorkspaceError(f"repo_path {source} is not a folder")
        rev = instance.base_commit or "HEAD"
        if is_git_repo(source) and not instance.base_has_fix:
            git(source.parent, "clone", "--quiet", "--no-checkout", str(source), str(dest))
            try:
                git(dest, "checkout", "--quiet", "--detach", f"{rev}^{{commit}}")
            except WorkspaceError:
                raise WorkspaceError(f"base_commit {rev!r} is not a commit of {source}") from None
            git(dest, "remote", "remove", "origin")
            for ref in git(dest, "for-each-ref", "--format=%(refname)").split():
                git(dest, "update-ref", "-d", ref)
        else:
            if is_git_repo(source):
                _export(source, rev, dest)
            elif instance.base_commit:
                raise WorkspaceError(f"base_commit given but {source} is not a git repository")
            else:
                shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
            git(dest, "init", "--quiet", "--initial-branch=main")
        workspace = cls(dest, "")
        (dest / ".git" / "info").mkdir(parents=True, exist_ok=True)
        with (dest / ".git" / "info" / "exclude").open("a", encoding="utf-8") as handle:
            handle.write(_EXCLUDES)
        if instance.base_has_fix:
            workspace.apply(instance.test_patch, reverse=True, what="test_patch (reversed)")
            workspace.apply(instance.patch, reverse=True, what="patch (reversed)")
        if not (is_git_repo(source) and not instance.base_has_fix):
            git(dest, "add", "--all")
            git(dest, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", "start state")
        workspace.base = git(dest, "rev-parse", "HEAD").strip()
        return workspace

    def apply(self, patch: str, *, reverse: bool = False, what: str = "patch") -> None:
        if not patch.strip():
            return
        args = ["apply", "--whitespace=nowarn", *(["--reverse"] if reverse else []), "-"]
        try:
            git(self.path, *args, input=patch.encode())
        except WorkspaceError as exc:
            raise WorkspaceError(f"{what} does not apply: {str(exc).removeprefix('git apply: ')}") from None

    def reset_paths(self, paths: list[str]) -> None:
        """Put `paths` back as they are at the start commit (deleting those it does not have)."""
        tracked = (
            set(git(self.path, "ls-tree", "-r", "--name-only", self.base, "--", *paths).split()) if paths else set()
        )
        for rel in paths:
            if rel in tracked:
                git(self.path, "checkout", self.base, "--", rel)
            else:
                (self.path / rel).unlink(missing_ok=True)

    def diff(self) -> str:
        """Everything changed since the start commit, new files included, as a patch `git apply` accepts."""
        git(self.path, "add", "--all")
        patch = git(self.path, "diff", "--cached", "--binary", self.base)
        git(self.path, "reset", "--quiet")
        return patch

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _export(source: Path, rev: str, dest: Path) -> None:
    """The files of `rev` (no history) into `dest`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run(["git", "archive", "--format=tar", rev], cwd=source, capture_output=True, env=env)
    if result.returncode != 0:
        raise WorkspaceError(f"base_commit {rev!r} is not a commit of {source}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(dest, filter="data")
