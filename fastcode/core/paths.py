"""Where a run's files live: the repo root, run ids and `<repo>/.fastcode/runs/<run-id>/` (trace.jsonl, diff.patch,
meta.json). Standard library only."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

STATE_DIR = ".fastcode"


def cache_root() -> Path:
    """fastcode's cache folder: $XDG_CACHE_HOME/fastcode, else ~/.cache/fastcode."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastcode"


def find_repo_root(start: Path) -> Path:
    """The nearest folder above `start` holding .git, else `start` itself (no git import needed)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def new_run_id() -> str:
    """A sortable, unique id: UTC date and time plus 4 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def runs_root(repo: Path) -> Path:
    return repo / STATE_DIR / "runs"


def run_dir(repo: Path, run_id: str) -> Path:
    return runs_root(repo) / run_id


def no_run(repo: Path, run_id: str | None) -> str:
    """Why `find_run` found nothing: no runs yet, no such run, or a prefix several runs share (they are named)."""
    root = runs_root(repo)
    runs = sorted(p.name for p in root.iterdir() if (p / "trace.jsonl").is_file()) if root.is_dir() else []
    if run_id is None or not runs:
        return f"no runs yet under {repo}" if not runs else f"no run {run_id!r} under {root}"
    matches = [r for r in runs if r.startswith(run_id)]
    if len(matches) > 1:
        shown = ", ".join(matches[-5:]) + (" …" if len(matches) > 5 else "")
        return f"{len(matches)} runs start with {run_id!r} ({shown}): give more of the id"
    return f"no run {run_id!r} under {root} (fastcode undo --list shows the runs)"


def find_run(repo: Path, run_id: str | None) -> Path | None:
    """The run folder named `run_id` (a unique prefix is enough), or the latest run when None."""
    root = runs_root(repo)
    if not root.is_dir():
        return None
    runs = sorted(p for p in root.iterdir() if (p / "trace.jsonl").is_file())
    if run_id is None:
        return runs[-1] if runs else None
    matches = [p for p in runs if p.name.startswith(run_id)]
    return matches[0] if len(matches) == 1 else None


def scratch_root(repo: Path | None = None) -> Path:
    """fastcode's own folder under the system temporary folder (`<tmp>/fastcode-<uid>`, private), and in it one per
    repository (`<hash of its path>`): the sandbox's per-session $TMPDIR and the test-time search's scratch copies
    for `repo` live there, so a confined warm runner may write them and nothing else of /tmp — not even another
    repository's."""
    import hashlib
    import tempfile

    path = Path(tempfile.gettempdir()) / f"fastcode-{os.getuid()}"
    if repo is not None:
        path = path / hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.getuid():
        raise OSError(f"{path} is not this user's own folder")
    return path


OWN_GIT_CONFIG = {"core.fsmonitor": "false", "core.hooksPath": "/dev/null", "diff.ignoreSubmodules": "all",
                  "submodule.recurse": "false"}  # fmt: skip
"""What fastcode's own git commands (gathering, the repo map, checkpoints) run with: a command the agent ran may have
planted a submodule or nested repository whose config runs a program (`core.fsmonitor`, hooks); fastcode's git
never runs it (and never looks into submodules)."""


def own_git_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) plus OWN_GIT_CONFIG, as git reads config from the environment
    (`GIT_CONFIG_COUNT`, git 2.31+; it reaches every git process that one starts, submodules included)."""
    env = dict(os.environ if base is None else base)
    for key in [k for k in env if k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))]:
        del env[key]
    env["GIT_CONFIG_COUNT"] = str(len(OWN_GIT_CONFIG))
    for i, (key, value) in enumerate(OWN_GIT_CONFIG.items()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


_WORKED_ON: set[Path] = set()
"""Repositories this process runs commands in (`worked_on`): their folders on PATH are not trusted for fastcode's own
programs."""


def worked_on(root: Path) -> None:
    _WORKED_ON.add(root.resolve())


def own_program(name: str) -> str | None:
    """`shutil.which(name)` for a program fastcode itself runs outside the sandbox (git, rg, llama-server), skipping
    PATH entries that are relative or inside a repository it works on: a command may have planted a `git` in the
    repository's activated `.venv/bin`."""
    import shutil

    entries = []
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        resolved = Path(entry).resolve()
        if any(resolved == r or r in resolved.parents for r in _WORKED_ON):
            continue
        entries.append(entry)
    return shutil.which(name, path=os.pathsep.join(entries))
