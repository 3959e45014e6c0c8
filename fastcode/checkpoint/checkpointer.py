"""Checkpoints, run diffs and undo: what a run changed, and how to put it back.

Owns `<run_dir>/meta.json` and `<run_dir>/diff.patch`. Inside a git work tree the checkpoint is a commit of
the whole working tree on `refs/fastcode/checkpoints/<run-id>` (see `git_store`); elsewhere each file is
copied the first time the run touches it (see `copy_store`).

meta.json (version 1):
    run_id, mode ("git" | "copy"), checkpointed (bool), checkpoint_ms, finished (bool),
    checkpoint / after: {"ref", "sha" (the commit on ref), "tree"} or null (git mode; diff/undo use trees),
    head: {"ref" (the branch, or null when detached), "sha"} at the checkpoint, and after_head (the commit HEAD
        was on when the run ended): a run that committed is undone by moving its branch back (git mode),
    `<run_dir>/index.before`: the user's index at the checkpoint, put back when undo moves the branch back,
    files: [{"path", "status": "added" | "modified" | "deleted", "sha256" (copy mode)}],
    commands_without_git: shell commands run in copy mode (their effects cannot be undone),
    own_output: files behind fastcode's own stdout/stderr inside the work tree (`fastcode ... > out.txt`): never
        counted as the run's changes, never restored by undo,
    backups: {path: {"backup", "mode", "created_dirs"}} (copy mode), git_error (when git failed, copies used),
    undone: null | {"at", "forced", "restored", "removed"}.
`<run_dir>/alive` is touched every second from the checkpoint until the run finishes: after a kill, its time says
when the run stopped, so undo can tell the run's changes from edits made after it.
Undoing a run twice raises AlreadyUndone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastcode.checkpoint.copy_store import CopyStore, unified_diff
from fastcode.checkpoint.git_store import GitError, GitStore, Status, ensure_excluded

__all__ = [
    "AlreadyUndone",
    "Checkpointer",
    "FileChange",
    "RunChanges",
    "RunRecord",
    "UndoError",
    "UndoRefused",
    "UndoResult",
    "ensure_excluded",
    "list_runs",
    "undo",
]

META = "meta.json"
DIFF = "diff.patch"
LARGE_UNTRACKED = 5_000_000
"""Untracked files over this many bytes stay out of git checkpoints (stored again each run, they grew .git by their
size per run); the file tools still keep a copy of one they write."""
KEEP_RUNS = 20
"""Checkpoint refs of the newest runs kept; older ones are pruned when a run takes its checkpoint."""
ALIVE = "alive"
INDEX_BEFORE = "index.before"
HEARTBEAT_S = 1.0
LATE_S = 2.0
"""A file of an unfinished run changed this long after its last heartbeat was edited by someone else."""


@dataclass(frozen=True)
class FileChange:
    path: str
    """POSIX path relative to the git work tree (git mode) or to the root (copy mode)."""
    status: Status


@dataclass
class RunChanges:
    diff: str
    files: list[FileChange]


@dataclass
class UndoResult:
    restored: list[str]
    removed: list[str]
    warnings: list[str] = field(default_factory=list)
    """What undo could not do: shell commands it cannot reverse (copy mode), paths it left alone."""


class UndoError(Exception):
    """Undo cannot proceed; the message says why."""


class UndoRefused(UndoError):
    """Files the run changed were edited since; undoing would lose those edits. `force=True` overrides."""

    def __init__(self, files: list[str]) -> None:
        self.files = files
        super().__init__(f"edited since the run, undo would overwrite them (force to override): {', '.join(files)}")


class AlreadyUndone(UndoError):
    """The run was undone before."""


class Checkpointer:
    """Takes the checkpoint before a run's first write, and records the run's changes when it ends."""

    def __init__(self, root: Path, run_dir: Path, run_id: str) -> None:
        self.root = Path(root).resolve()
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self._lock = threading.Lock()
        self._ready = False  # the lock-free fast path of before_write in git mode
        self._committer: threading.Thread | None = None
        self._stopped = threading.Event()
        self._commit_result: str | GitError | None = None
        self._git = GitStore.open(self.root)
        if self._git is not None:
            self._git.ensure_excluded()
        self._meta: dict[str, Any] = {
            "version": 1,
            "run_id": run_id,
            "mode": "copy" if self._git is None else "git",
            "checkpointed": False,
            "checkpoint_ms": None,
            "finished": False,
            "checkpoint": None,
            "after": None,
            "files": [],
            "commands_without_git": 0,
            "own_output": own_output_files(self._git.top) if self._git is not None else [],
            "undone": None,
        }
        self._copy = None if self._git is not None else self._copy_store({})
        self._side = CopyStore(self.root, self.run_dir / "backup", self._meta.setdefault("backups", {}))
        """Git mode: copies of the files the file tools touch, for those git does not snapshot (ignored)."""

    @property
    def checkpointed(self) -> bool:
        return bool(self._meta["checkpointed"])

    @property
    def mode(self) -> str:
        return str(self._meta["mode"])

    @property
    def checkpoint_ms(self) -> float | None:
        """How long the checkpoint took (the first write waited that long), or None before it."""
        return self._meta["checkpoint_ms"]

    def before_write(self, path: Path | None) -> None:
        """Call before writing `path`, or with None before a shell command that may write anything."""
        if self._ready:  # git mode: a copy too, for files the snapshot leaves out (.gitignored ones)
            with self._lock:
                self._touch_side(path)
            return
        with self._lock:
            if not self._meta["checkpointed"]:
                self._take()
            if self._copy is None:
                self._ready = True
                self._touch_side(path)
                return
            if path is None:
                self._meta["commands_without_git"] += 1
                self._save()
            elif self._copy.touch(path):
                self._save()

    def finish(self) -> RunChanges:
        """Snapshot the result, write meta.json and diff.patch, and return what the run changed."""
        self._stopped.set()
        with self._lock:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            diff: bytes = b""
            files: list[dict[str, Any]] = []
            if self._meta["checkpointed"] and self._git is not None:
                self._wait_for_commit()
                before = self._meta["checkpoint"]
                tree = self._git.write_tree(self.run_dir, self._meta.get("left_out", []))
                after = {"ref": self._ref("after"), "sha": None, "tree": tree}
                with contextlib.suppress(GitError):  # the trees are what undo needs; the ref is for people
                    after["sha"] = self._git.commit(tree, before["sha"], after["ref"])
                self._meta["after"] = after
                self._meta["after_head"] = self._git.head()
                own = self._meta.get("own_output", [])
                changes = [c for c in self._git.changes(before["tree"], tree) if c.path not in own]
                files = [{"path": c.path, "status": c.status} for c in changes]
                diff = self._git.patch(before["tree"], tree, own) if files else b""
                ignored, text = self._ignored_changes({c.path for c in changes})
                files += ignored
                diff += text.encode()
            elif self._meta["checkpointed"] and self._copy is not None:
                changes, text = self._copy.changes()
                files = [{"path": c.path, "status": c.status, "sha256": c.sha256} for c in changes]
                diff = text.encode()
            (self.run_dir / DIFF).write_bytes(diff)
            self._meta.update(files=files, finished=True)
            self._save()
            changes = [FileChange(f["path"], f["status"]) for f in files]
            return RunChanges(diff=diff.decode(errors="replace"), files=changes)

    def _touch_side(self, path: Path | None) -> None:
        if path is None:
            self._meta["commands_run"] = self._meta.get("commands_run", 0) + 1
        elif self._side.touch(path):
            self._save()

    def _ignored_changes(self, in_git: set[str]) -> tuple[list[dict[str, Any]], str]:
        """Files the file tools changed that git's snapshot left out (.gitignored): from their copies."""
        assert self._git is not None
        files, patches = [], []
        for change in self._side.changes()[0]:
            path = self._side.full(change.path)
            try:
                top_rel = Path(os.path.abspath(path)).relative_to(self._git.top).as_posix()
            except ValueError:
                continue
            if top_rel in in_git:
                continue
            files.append({"path": top_rel, "key": change.path, "status": change.status, "sha256": change.sha256,
                          "ignored": True})  # fmt: skip
            patches.append(unified_diff(change.path, self._side.before(change.path), _read(path)))
        return files, "".join(patches)

    def _take(self) -> None:
        started = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._git is not None:
            try:
                self._meta["left_out"] = self._git.large_untracked(LARGE_UNTRACKED)
                tree, parent = self._git.write_tree(self.run_dir, self._meta["left_out"]), self._git.head()
                self._meta["checkpoint"] = {"ref": self._ref("checkpoints"), "sha": None, "tree": tree}
                self._meta["head"] = {"ref": self._git.head_ref(), "sha": parent}
                with contextlib.suppress(OSError):
                    shutil.copy2(self._git.git_dir / "index", self.run_dir / INDEX_BEFORE)
                # The tree is the checkpoint; wrapping it in a commit on a ref (~2 git processes) happens
                # off the critical path, while the first write goes ahead.
                self._committer = threading.Thread(target=self._commit_checkpoint, args=(tree, parent))
                self._committer.start()
            except (GitError, OSError) as exc:  # an odd repo must not block the run: fall back to copies
                self._git = None
                self._meta.update(mode="copy", git_error=str(exc))
                self._copy = self._copy_store({})
        self._meta["checkpointed"] = True
        self._meta["checkpoint_ms"] = round((time.perf_counter() - started) * 1000, 1)
        self._save()
        try:  # taken before the first write goes ahead, so an undo at any later moment sees the run alive
            held = open(self.run_dir / ALIVE, "a")  # noqa: SIM115 — held for the run's life
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            held = None
        threading.Thread(target=self._heartbeat, args=(held,), daemon=True).start()

    def _heartbeat(self, held: Any) -> None:
        """Keep the lock on `alive` (taken by _take) and touch the file every second until finish(): while the lock
        is held the run is alive (the kernel drops it when the process dies, SIGKILL too); a killed run's last touch
        is when it stopped."""
        alive = self.run_dir / ALIVE
        try:
            while True:
                with contextlib.suppress(OSError):
                    os.utime(alive)
                if self._stopped.wait(HEARTBEAT_S):
                    return
        finally:
            if held is not None:
                held.close()

    def _commit_checkpoint(self, tree: str, parent: str | None) -> None:
        """Runs in a thread; touches only `_commit_result`, so meta.json writes never race with it."""
        assert self._git is not None
        try:
            self._commit_result = self._git.commit(tree, parent, self._ref("checkpoints"))
        except GitError as exc:
            self._commit_result = exc
        with contextlib.suppress(GitError):
            self._git.prune(KEEP_RUNS)

    def _wait_for_commit(self) -> None:
        if self._committer is None:
            return
        self._committer.join()
        self._committer = None
        if isinstance(self._commit_result, GitError):
            self._meta["ref_error"] = str(self._commit_result)
        else:
            self._meta["checkpoint"]["sha"] = self._commit_result

    def _ref(self, kind: str) -> str:
        return f"refs/fastcode/{kind}/{self.run_id}"

    def _copy_store(self, manifest: dict[str, dict[str, Any]]) -> CopyStore:
        self._meta["backups"] = manifest
        return CopyStore(self.root, self.run_dir / "backup", manifest)

    def _save(self) -> None:
        _write_meta(self.run_dir, self._meta)

    @classmethod
    def _resume(cls, root: Path, run_dir: Path, meta: dict[str, Any]) -> Checkpointer:
        """A Checkpointer for a run that never finished (it crashed), ready for finish()."""
        cp = cls(root, run_dir, meta["run_id"])
        if meta["mode"] == "git" and cp._git is None:
            raise UndoError(f"{root} is no longer inside a git work tree")
        cp._meta = meta
        cp._side = CopyStore(cp.root, run_dir / "backup", meta.setdefault("backups", {}))
        if meta["mode"] == "copy":
            cp._git = None
            cp._copy = cp._copy_store(meta.get("backups", {}))
        return cp


def undo(root: Path, run_dir: Path, *, force: bool = False) -> UndoResult:
    """Put back the files a run changed, as they were at its checkpoint.

    Raises UndoRefused when some of those files were edited since the run (unless `force`), AlreadyUndone on a
    second call, UndoError when the run has no record. A run that never finished (killed) is undone from its
    checkpoint: the files that differ from it are put back, unless one changed after the run stopped (its last
    heartbeat), which only `force` overrides; a warning says so.
    """
    meta = _read_meta(run_dir)
    if meta.get("undone"):
        raise AlreadyUndone(f"run {meta['run_id']} was already undone at {meta['undone']['at']}")
    notes = []
    if not meta.get("finished"):
        stopped = _stopped_at(run_dir)
        if not force and _still_running(run_dir):
            raise UndoError(f"run {meta['run_id']} is still running; stop it first (Ctrl-C), or force")
        unfinished = json.loads(json.dumps(meta))
        resumed = Checkpointer._resume(root, run_dir, meta)
        resumed.finish()
        meta = resumed._meta
        base = resumed._git.top if resumed._git is not None else Path(root).resolve()
        late = _changed_after(base, meta["files"], stopped + LATE_S)
        if late and not force:
            _write_meta(run_dir, unfinished)  # still unfinished: the next undo judges the same files the same way
            raise UndoRefused(late)
        when = datetime.fromtimestamp(stopped).astimezone().strftime("%H:%M:%S")
        notes.append(
            f"run {meta['run_id']} did not finish (it stopped at {when}): every file that differs from its "
            "checkpoint is put back"
        )
    result = UndoResult([], [])
    if meta["checkpointed"] and meta["files"]:
        result = (
            _undo_git(root, run_dir, meta, force) if meta["mode"] == "git" else _undo_copy(root, run_dir, meta, force)
        )
    result.warnings[:0] = notes
    if meta.get("commands_without_git"):
        n = meta["commands_without_git"]
        result.warnings.append(f"{n} shell command(s) ran without git: whatever they changed is not undone")
    meta["undone"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "forced": force,
        "restored": result.restored,
        "removed": result.removed,
    }
    _write_meta(run_dir, meta)
    return result


def _undo_git(root: Path, run_dir: Path, meta: dict[str, Any], force: bool) -> UndoResult:
    store = GitStore.open(Path(root).resolve())
    if store is None:
        raise UndoError(f"{root} is no longer inside a git work tree")
    before, after = meta["checkpoint"]["tree"], meta["after"]["tree"]
    own = meta.get("own_output", [])
    changes = [c for c in store.changes(before, after) if c.path not in own]
    side = CopyStore(Path(root).resolve(), run_dir / "backup", meta.get("backups", {}))
    ignored = [{**f, "path": f["key"]} for f in meta["files"] if f.get("ignored")]
    edited = store.edited(changes) + side.edited(ignored)
    if edited and not force:
        raise UndoRefused(edited)
    removed, warned = store.remove([c for c in changes if c.status == "added"], before)
    restored, warned2 = store.restore([c for c in changes if c.status != "added"], run_dir)
    back, gone = side.restore(ignored)
    notes = warned + warned2 + _undo_commits(store, run_dir, meta)
    if (left_out := meta.get("left_out")) and meta.get("commands_run"):
        notes.append(f"{len(left_out)} untracked file(s) over {LARGE_UNTRACKED // 1_000_000} MB were not in the "
                     f"checkpoint ({', '.join(left_out[:3])}): what commands did to them is not undone")  # fmt: skip
    if meta.get("commands_run"):
        notes.append("files that .gitignore excludes are restored only where the file tools changed them; what the "
                     "run's commands did to them is not undone")  # fmt: skip
    return UndoResult(restored + back, removed + gone, notes)


def _undo_commits(store: GitStore, run_dir: Path, meta: dict[str, Any]) -> list[str]:
    """Commits the run made: its branch goes back to where it was (and the user's index with it), unless the
    branch moved again since the run. Returns what was done, as notes."""
    head, after = meta.get("head") or {}, meta.get("after_head")
    ref, before = head.get("ref"), head.get("sha")
    if not after or after == before:
        return []
    moved = [f"the run made commits ({(before or 'none')[:10]} -> {after[:10]}), and HEAD has moved or changed "
             "branch since: left as it is"]  # fmt: skip
    if not ref or store.head_ref() != ref or store.head() != after:
        return moved
    try:
        if before:
            store.run("update-ref", "-m", "fastcode undo", ref, before, after)
        else:
            store.run("update-ref", "-d", ref, after)
    except GitError:
        return moved
    saved = run_dir / INDEX_BEFORE
    if saved.is_file():
        shutil.copy2(saved, store.git_dir / "index")
    return [f"{ref.removeprefix('refs/heads/')} moved back from {after[:10]} to {(before or 'no commit')[:10]}: "
            "the run's commits are undone (still in the reflog)"]  # fmt: skip


def _undo_copy(root: Path, run_dir: Path, meta: dict[str, Any], force: bool) -> UndoResult:
    store = CopyStore(Path(root).resolve(), run_dir / "backup", meta["backups"])
    edited = store.edited(meta["files"])
    if edited and not force:
        raise UndoRefused(edited)
    restored, removed = store.restore(meta["files"])
    return UndoResult(restored, removed)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    state: str
    """"changed N files", "undone", "did not finish", "no changes" or "checkpoint pruned"."""


def list_runs(root: Path, runs: Path) -> list[RunRecord]:
    """Every recorded run under `runs` (oldest first) and what undo could do with it."""
    store = GitStore.open(Path(root).resolve())
    kept: set[str] | None = None
    if store is not None:
        with contextlib.suppress(GitError):
            listed = store.run("for-each-ref", "--format=%(refname)", "refs/fastcode/checkpoints/").decode().split()
            kept = {ref.rsplit("/", 1)[-1] for ref in listed}
    records = []
    for folder in sorted(p for p in runs.iterdir() if (p / META).is_file()) if runs.is_dir() else []:
        try:
            meta = _read_meta(folder)
        except UndoError:
            continue
        files = len(meta.get("files") or [])
        if meta.get("undone"):
            state = "undone"
        elif not meta.get("finished"):
            state = "did not finish (undo restores its checkpoint)"
        elif not files:
            state = "no changes"
        elif meta.get("mode") == "git" and kept is not None and folder.name not in kept:
            state = f"changed {files} files; checkpoint pruned (only the last {KEEP_RUNS} runs keep one)"
        else:
            state = f"changed {files} file{'s' if files != 1 else ''}"
        records.append(RunRecord(folder.name, state))
    return records


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _still_running(run_dir: Path) -> bool:
    """True while the run's process holds the lock on its `alive` file."""
    try:
        with open(run_dir / ALIVE, "a") as alive:
            fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _stopped_at(run_dir: Path) -> float:
    """When an unfinished run stopped: its last heartbeat or trace line, whichever is latest (meta.json is not a
    witness: undo itself rewrites it)."""
    times = [0.0]
    for name in (ALIVE, "trace.jsonl"):
        with contextlib.suppress(OSError):
            times.append((run_dir / name).stat().st_mtime)
    return max(times)


def _changed_after(base: Path, files: list[dict[str, Any]], when: float) -> list[str]:
    """The run's files whose disk copy changed after `when` (someone else edited them after the run)."""
    late = []
    for f in files:
        with contextlib.suppress(OSError):
            if (base / f["path"]).lstat().st_mtime > when:
                late.append(f["path"])
    return late


def own_output_files(top: Path) -> list[str]:
    """The regular files behind this process's stdout and stderr that lie inside `top`, relative to it (Linux's
    /proc names them; elsewhere none are found)."""
    found = []
    for fd in (1, 2):
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            path = Path(os.readlink(f"/proc/self/fd/{fd}")).resolve()
            found.append(path.relative_to(top).as_posix())
        except (OSError, ValueError):
            continue
    return sorted(set(found))


def _read_meta(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / META).read_text())
    except FileNotFoundError:
        raise UndoError(f"nothing to undo: {run_dir / META} does not exist") from None
    except json.JSONDecodeError as exc:
        raise UndoError(f"{run_dir / META} is unreadable: {exc}") from None


def _write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    """Atomic replace, so a crash never leaves half a meta.json."""
    tmp = run_dir / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(run_dir / META)
