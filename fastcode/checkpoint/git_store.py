"""Git plumbing for checkpoints: snapshot the working tree to a private ref, diff snapshots, restore files.

Snapshots never touch HEAD, the user's index or their branch: `git add -A` runs against a temporary index
(seeded with a copy of the user's, so unchanged files are not re-hashed) and `write-tree` stores the tree;
`commit-tree` + `update-ref` then keep it on `refs/fastcode/...`. Restores run `checkout-index` on another
temporary index holding only the files to restore, so modes, symlinks and eol/filter attributes apply as on
checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastcode.core.paths import own_git_environ, own_program

if TYPE_CHECKING:
    import git

Status = Literal["added", "modified", "deleted"]
EXCLUDE_LINE = ".fastcode/"
_STATUS: dict[str, Status] = {"A": "added", "D": "deleted", "M": "modified", "T": "modified"}
_GITLINK = "160000"
_SYMLINK = "120000"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "fastcode",
    "GIT_AUTHOR_EMAIL": "fastcode@localhost",
    "GIT_COMMITTER_NAME": "fastcode",
    "GIT_COMMITTER_EMAIL": "fastcode@localhost",
}


class GitError(Exception):
    """A git command failed; the message carries its stderr."""


@dataclass(frozen=True)
class TreeChange:
    """One path that differs between two snapshots; a missing side has mode "000000"."""

    path: str
    status: Status
    old_mode: str
    old_sha: str
    new_mode: str
    new_sha: str


def ensure_excluded(root: Path) -> None:
    """Add `.fastcode/` to the repo's `.git/info/exclude` once; no-op outside git. Never edits .gitignore."""
    store = GitStore.open(root)
    if store is not None:
        store.ensure_excluded()


class GitStore:
    """One git work tree, driven through plumbing commands with an explicit GIT_DIR."""

    def __init__(self, repo: git.Repo) -> None:
        assert repo.working_tree_dir is not None
        self.repo = repo
        self.top = Path(repo.working_tree_dir).resolve()
        self.git_dir = Path(repo.git_dir)
        self.common_dir = Path(repo.common_dir)
        env = own_git_environ({k: v for k, v in os.environ.items() if k != "GIT_INDEX_FILE"})
        env.update(
            GIT_DIR=str(self.git_dir),
            GIT_WORK_TREE=str(self.top),
            GIT_OPTIONAL_LOCKS="0",
            GIT_TERMINAL_PROMPT="0",
        )
        self._env = env

    @classmethod
    def open(cls, root: Path) -> GitStore | None:
        """The work tree containing `root`, or None when it is not inside one (or git is unavailable)."""
        try:
            import git  # gitpython costs ~0.1 s to import: paid when a run starts, not when fastcode starts

            repo = git.Repo(root, search_parent_directories=True)
        except Exception:  # not a repo, no such path, or no git binary: the caller falls back to copies
            return None
        if repo.bare or repo.working_tree_dir is None:
            return None
        return cls(repo)

    def run(
        self,
        *args: str,
        index: Path | None = None,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> bytes:
        """Run one git command in the work tree and return its stdout, or raise GitError."""
        env = {**self._env, **(env or {}), **({"GIT_INDEX_FILE": str(index)} if index else {})}
        proc = subprocess.run([own_program("git") or "git", *args], cwd=self.top, env=env, input=stdin,
                              capture_output=True)  # fmt: skip
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            name = next(a for a in args if not a.startswith("-") and "=" not in a)
            raise GitError(f"git {name} failed: {err}")
        return proc.stdout

    def ensure_excluded(self) -> None:
        exclude = self.common_dir / "info" / "exclude"
        text = exclude.read_text(errors="replace") if exclude.is_file() else ""
        lines = {line.strip() for line in text.splitlines()}
        if lines & {".fastcode", ".fastcode/", "/.fastcode", "/.fastcode/"}:
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        sep = "" if not text or text.endswith("\n") else "\n"
        with exclude.open("a") as f:
            f.write(f"{sep}{EXCLUDE_LINE}\n")

    def large_untracked(self, limit: int) -> list[str]:
        """Untracked, not ignored files over `limit` bytes (a data file, a dump): a snapshot would store each of
        them again every run, so they are left out of it."""
        out = self.run("ls-files", "-o", "--exclude-standard", "-z")
        large = []
        for rel in filter(None, os.fsdecode(out).split("\0")):
            with contextlib.suppress(OSError):
                if (self.top / rel).stat().st_size > limit:
                    large.append(rel)
        return large

    def write_tree(self, scratch: Path, leave_out: list[str] = ()) -> str:  # type: ignore[assignment]
        """Store the working tree (tracked + untracked-not-ignored, as on disk, but `leave_out`) as a tree; return its
        id."""
        index = scratch / "index.tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        # `.fastcode/` stays out through info/exclude (ensure_excluded): git 2.39 fails an `add` whose
        # `:(exclude)` pathspec names an ignored directory.
        add = ["-c", "core.safecrlf=false", "-c", "advice.addEmbeddedRepo=false", "add", "-A", "--", "."]
        add += [f":(top,literal,exclude){rel}" for rel in leave_out]
        try:
            seeded = self._seed(index)
            try:
                self.run(*add, index=index)
            except GitError:
                if not seeded:
                    raise
                # an index we cannot reuse (split index, an odd extension): start from an empty one
                index.unlink(missing_ok=True)
                self.run(*add, index=index)
            return self.run("write-tree", index=index).decode().strip()
        finally:
            index.unlink(missing_ok=True)

    def head(self) -> str | None:
        """The commit HEAD points at, read from the ref files (no process); None on an unborn branch."""
        from git import SymbolicReference  # already imported by open()

        try:
            return str(SymbolicReference.dereference_recursive(self.repo, "HEAD"))
        except Exception:  # unborn branch, or a ref layout gitpython cannot read: the commit gets no parent
            return None

    def head_ref(self) -> str | None:
        """The branch HEAD is on (`refs/heads/main`), read from the HEAD file; None when detached."""
        try:
            text = (self.git_dir / "HEAD").read_text().strip()
        except OSError:
            return None
        return text.removeprefix("ref: ") if text.startswith("ref: ") else None

    def commit(self, tree: str, parent: str | None, ref: str) -> str:
        """Wrap `tree` in a commit (never signed, fixed identity) and point the private `ref` at it."""
        args = ["commit-tree", "--no-gpg-sign", tree, "-m", f"fastcode {ref}"]
        sha = self.run(*args, *(["-p", parent] if parent else []), env=_IDENTITY).decode().strip()
        self.run("update-ref", ref, sha)
        return sha

    def prune(self, keep: int) -> list[str]:
        """Delete the private refs of all but the newest `keep` runs (run ids sort by time); their objects go with
        git's next gc. Returns the run ids pruned."""
        listed = self.run("for-each-ref", "--format=%(refname)", "refs/fastcode/").decode().split()
        runs = sorted({ref.rsplit("/", 1)[-1] for ref in listed})
        old = set(runs[: max(len(runs) - keep, 0)])
        if old:
            commands = "".join(f"delete {ref}\n" for ref in listed if ref.rsplit("/", 1)[-1] in old)
            self.run("update-ref", "--stdin", stdin=commands.encode())
        return sorted(old)

    def _seed(self, index: Path) -> bool:
        """Start the temporary index from the user's, so `add -A` only re-hashes files whose stat changed."""
        try:
            # copy2 keeps the index's mtime, which git's racy-clean check compares entries against
            shutil.copy2(self.git_dir / "index", index)
        except FileNotFoundError:
            index.unlink(missing_ok=True)
            return False
        return True

    def changes(self, old: str, new: str) -> list[TreeChange]:
        """The paths that differ between two trees, with both sides' modes and blob ids."""
        out = self.run("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", old, new)
        parts = os.fsdecode(out).split("\0")  # any byte git can store survives (surrogateescape), for restore
        result = []
        for meta, path in zip(parts[0:-1:2], parts[1::2], strict=False):
            old_mode, new_mode, old_sha, new_sha, code = meta.lstrip(":").split(" ")
            status = _STATUS.get(code[0], "modified")
            result.append(TreeChange(path, status, old_mode, old_sha, new_mode, new_sha))
        return result

    def patch(self, old: str, new: str, exclude: list[str] = ()) -> bytes:  # type: ignore[assignment]
        """A binary-safe patch from `old` to `new` (plumbing: immune to color, textconv, external diff), without the
        paths in `exclude`."""
        spec = ["--", ".", *(f":(top,literal,exclude){p}" for p in exclude)] if exclude else []
        return self.run("diff-tree", "-p", "--binary", "--no-renames", "--no-commit-id", "-r", old, new, *spec)

    def edited(self, changes: list[TreeChange]) -> list[str]:
        """Paths whose file on disk no longer matches the snapshot's new side (edited or deleted since)."""
        edited, files = [], []
        for c in changes:
            disk = self.top / c.path
            if _GITLINK in (c.old_mode, c.new_mode):
                continue  # a nested repository: never judged, never touched
            if _absent(c.new_sha):
                if os.path.lexists(disk):
                    edited.append(c.path)
            elif c.new_mode == _SYMLINK:
                if not disk.is_symlink() or _blob_sha(os.fsencode(os.readlink(disk)), c.new_sha) != c.new_sha:
                    edited.append(c.path)
            elif disk.is_symlink() or not disk.is_file():
                edited.append(c.path)
            else:
                files.append(c)
        if files:
            paths = b"".join(os.fsencode(c.path) + b"\n" for c in files)
            shas = self.run("hash-object", "--stdin-paths", stdin=paths).decode().split()
            edited += [c.path for c, sha in zip(files, shas, strict=True) if sha != c.new_sha]
        return sorted(edited)

    def remove(self, changes: list[TreeChange], checkpoint: str) -> tuple[list[str], list[str]]:
        """Delete files the run added, then their now-empty parent dirs absent from the checkpoint."""
        removed, warnings, parents = [], [], set()
        for c in changes:
            disk = self.top / c.path
            if disk.is_dir() and not disk.is_symlink():
                warnings.append(f"{c.path}: now a directory, left in place")
                continue
            if os.path.lexists(disk):
                disk.unlink()
                removed.append(c.path)
            parents.update(p.as_posix() for p in Path(c.path).parents if p.as_posix() != ".")
        if parents:
            # ls-tree names the deepest matching entries only ("a/b" hides "a"): keep their ancestors too
            listed = self.run("ls-tree", "-z", "--name-only", checkpoint, "--", *sorted(parents))
            for name in filter(None, os.fsdecode(listed).split("\0")):
                parents -= {name, *(p.as_posix() for p in Path(name).parents)}
            for rel in sorted(parents, key=lambda p: p.count("/"), reverse=True):
                with contextlib.suppress(OSError):
                    (self.top / rel).rmdir()  # only succeeds when empty
        return removed, warnings

    def restore(self, changes: list[TreeChange], scratch: Path) -> tuple[list[str], list[str]]:
        """Write the checkpoint side of each change back to disk, byte for byte, with its mode."""
        entries, restored, warnings = [], [], []
        for c in changes:
            disk = self.top / c.path
            if c.old_mode == _GITLINK:
                warnings.append(f"{c.path}: a submodule, not restored")
            elif disk.is_dir() and not disk.is_symlink() and any(disk.iterdir()):
                warnings.append(f"{c.path}: now a non-empty directory, not restored")
            else:
                entries.append(f"{c.old_mode} {c.old_sha}\t".encode() + os.fsencode(c.path) + b"\0")
                restored.append(c.path)
        if entries:
            index = scratch / "undo-index.tmp"
            index.unlink(missing_ok=True)
            try:
                self.run("update-index", "-z", "--index-info", index=index, stdin=b"".join(entries))
                self.run("checkout-index", "-a", "-f", index=index)
            finally:
                index.unlink(missing_ok=True)
        return restored, warnings


def _blob_sha(data: bytes, like: str) -> str:
    """The object id git gives `data` as a blob, in the hash (SHA-1 or SHA-256) that `like` uses."""
    algo = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return algo(b"blob %d\0" % len(data) + data).hexdigest()


def _absent(sha: str) -> bool:
    return not sha.strip("0")
