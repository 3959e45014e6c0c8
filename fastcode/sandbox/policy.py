"""From `[sandbox]` settings to what each command's child process applies, and what is said about it.

Modes: `workspace-write` (read anything; write only in the repository, a private temporary directory and the
paths the user adds; `.git` read-only; no network unless allowed), `read-only` (write only in that temporary
directory and the added paths), `off` (as the user). Linux enforces it with Landlock (needed) and, where user
namespaces work, mount and network namespaces; elsewhere nothing is enforced and `fallback` says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastcode.core.config import SandboxSection
from fastcode.core.paths import STATE_DIR, cache_root, scratch_root
from fastcode.sandbox import confine

CONFINE_SCRIPT = Path(confine.__file__)
"""The warm test runner loads this file by path (it runs under the repository's interpreter)."""
SHARED_WRITABLE = ("/dev/shm",)
"""Writable in every mode: POSIX shared memory, where multiprocessing keeps its locks and semaphores."""
DENIALS = ("Permission denied", "Read-only file system", "Operation not permitted")
"""What a command prints when the sandbox refused it a write (EACCES, EROFS, EPERM)."""
NET_DENIALS = ("Network is unreachable", "Connection refused", "name resolution", "Name or service not known")
"""What it prints when the network is off (no route, nothing listening in its own namespace, no DNS)."""


def protected_paths(root: Path) -> list[str]:
    """What commands may not write although it is in the repository (read-only bind mounts): `.git` (a directory,
    or a file naming the git folder, and that folder when it is inside the repository), fastcode's own `.fastcode/`
    (made now: fastcode writes run files there, outside the sandbox, and must not follow a symlink a command put
    there) and `.fastcode.toml` when it exists (in a trusted repository it may switch the sandbox off)."""
    git = root / ".git"
    paths = [git]
    if git.is_file():
        text = git.read_text(encoding="utf-8", errors="replace").strip()
        target = (root / text.removeprefix("gitdir:").strip()).resolve() if text.startswith("gitdir:") else None
        if target is not None and target.is_relative_to(root.resolve()):
            paths.append(target)
    (root / STATE_DIR).mkdir(exist_ok=True)
    paths += [root / STATE_DIR, root / ".fastcode.toml"]
    return [str(p) for p in paths if p.exists() and not p.is_symlink()]


@dataclass(frozen=True)
class Support:
    """What this machine can enforce."""

    landlock_abi: int
    namespaces: bool
    """Unprivileged user namespaces work (so `.git` can be read-only and the network an empty namespace)."""

    @property
    def enforced(self) -> bool:
        return sys.platform.startswith("linux") and self.landlock_abi > 0

    def describe(self) -> str:
        if not self.enforced:
            return "not enforced on this system (no Landlock)"
        parts = [f"Landlock ABI {self.landlock_abi}"]
        parts.append("namespaces" if self.namespaces else "no user namespaces: .git stays writable")
        return ", ".join(parts)


def _probe_spec(abi: int) -> dict[str, Any]:
    return {"mode": "probe", "landlock_abi": abi, "writable": [], "readonly": [], "userns": True, "netns": True}


@cache
def support() -> Support:
    """Probe once per process: the Landlock ABI, then one confined `/bin/true` with namespaces (≈ 3 ms)."""
    if not sys.platform.startswith("linux"):
        return Support(0, False)
    abi = confine.landlock_abi()
    spec = _probe_spec(abi)
    try:
        done = subprocess.run(["/bin/true"], preexec_fn=lambda: confine.confine(spec), timeout=10, check=False)
        namespaces = done.returncode == 0
    except (OSError, subprocess.SubprocessError):
        namespaces = False
    return Support(abi, namespaces)


@dataclass
class Sandbox:
    """The sandbox of one session: mode, allowances, and its private temporary directory."""

    mode: str
    network: bool = False
    ports: tuple[int, ...] = ()
    writable: tuple[str, ...] = ()
    support: Support = field(default_factory=lambda: Support(0, False))
    repo: Path | None = None
    """The repository the session works on: its scratch folder holds $TMPDIR (see `scratch_root`)."""
    _tmp: str = ""

    @classmethod
    def from_settings(cls, section: SandboxSection, repo: Path | None = None) -> Sandbox:
        extra = tuple(str(Path(p).expanduser().resolve()) for p in section.writable)
        probed = support() if section.mode != "off" else Support(0, False)
        return cls(section.mode, section.network, tuple(section.allow_ports), extra, probed, repo)

    @property
    def active(self) -> bool:
        """Commands are confined (a mode other than off, on a system that enforces it)."""
        return self.mode != "off" and self.support.enforced

    @property
    def fallback(self) -> bool:
        """A mode was asked for that this system cannot enforce: commands are asked for instead."""
        return self.mode != "off" and not self.support.enforced

    def describe(self) -> str:
        """One line for the status line, the trace and `config show`."""
        if self.mode == "off":
            return "off (commands run with your rights)"
        if self.fallback:
            return f"{self.mode}: {self.support.describe()}; every command asks for approval"
        net = "network on" if self.network else "network off"
        if not self.network and self.ports:
            net += f" except TCP ports {', '.join(map(str, self.ports))}"
        return f"{self.mode}, {net} ({self.support.describe()})"

    def tmp(self) -> str:
        """The private temporary directory commands may write (made on first use, removed by `close`)."""
        if not self._tmp:
            self._tmp = tempfile.mkdtemp(prefix="sandbox-", dir=scratch_root(self.repo))
        return self._tmp

    def spec(self, cwd: Path, *, nested: bool = False) -> dict[str, Any]:
        """What `confine.confine` applies in a child that runs in `cwd` (the repository or a copy of it); `nested`:
        in a child of a warm runner already confined by `runner_spec` (Landlock only, narrower)."""
        root = str(cwd.resolve())
        writable = [self.tmp(), *SHARED_WRITABLE, *self.writable] + ([root] if self.mode == "workspace-write" else [])
        return self._spec(root, writable, self.environ()) | {"nested": nested}

    def runner_spec(self, root: Path) -> dict[str, Any]:
        """What confines a warm test runner for `root` as a whole: it imports the repository's plugins (and whatever
        an interpreter inside the repository loads) before any run, and its runs only narrow it. It may write the
        repository, fastcode's scratch folder (each session's $TMPDIR and the search's scratch copies are there) and
        the extra paths; it outlives the session, so runners are keyed by this spec."""
        writable = [str(root.resolve()), str(scratch_root(root)), *SHARED_WRITABLE, *self.writable]
        return self._spec(str(root.resolve()), writable, {})  # its runs bring their own $TMPDIR

    def _spec(self, root: str, writable: list[str], env: dict[str, str]) -> dict[str, Any]:
        cache = cache_root()  # commands may not even read it: the kept-alive test runners' tokens are there
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)  # hidden only if it exists when the child confines
        return {
            "mode": self.mode,
            "landlock_abi": self.support.landlock_abi,
            "writable": writable,
            "readonly": protected_paths(Path(root)) if self.support.namespaces else [],
            "userns": self.support.namespaces,
            "netns": self.support.namespaces and not self.network and not self.ports,
            "network": self.network,
            "ports": list(self.ports),
            "env": env,
            "hidden": [str(cache)],
        }

    def environ(self) -> dict[str, str]:
        tmp = self.tmp()
        return {"TMPDIR": tmp, "TMP": tmp, "TEMP": tmp}

    def preexec(self, cwd: Path) -> Callable[[], None] | None:
        """The function a child calls just before exec (None when nothing is enforced)."""
        if not self.active:
            return None
        spec = self.spec(cwd)

        def apply() -> None:
            try:
                confine.confine(spec)
            except OSError as exc:  # the parent only learns that the child failed: say why where stderr goes
                os.write(2, f"fastcode: {exc}\n".encode())
                raise

        return apply

    def explain(self, output: str) -> str:
        """A note for the model when a failed command's output shows what the sandbox refuses ("" otherwise)."""
        if not self.active:
            return ""
        signs = DENIALS if self.network else DENIALS + NET_DENIALS
        hits = [line.strip() for line in output.splitlines() if any(d in line for d in signs)][:3]
        if not hits:
            return ""
        allowed = "the repository (not .git) and $TMPDIR" if self.mode == "workspace-write" else "only $TMPDIR"
        net = "" if self.network else "; the network is off"
        return (
            f"[sandbox {self.mode}: commands may write to {allowed}{net}. Refused here: {' | '.join(hits)[:300]}. "
            "Work inside the repository instead; the user can widen it with sandbox.writable or sandbox.network]"
        )

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = ""
