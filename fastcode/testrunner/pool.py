"""The live warm runners: one per (interpreter, repo root, environment), reused between runs and follow-ups.

Owns their lifetime in fastcode: started early by `prestart`, or by the first run; at most MAX_RUNNERS alive (the
least recently used one is stopped); a runner that failed to get ready is remembered so later runs fall back at
once; all are stopped by `shutdown` (also registered with atexit; a runner also exits by itself when fastcode dies).
With a keep-alive (`keep_alive`, per root; DEFAULT_KEEP_ALIVE_S otherwise) the runner is shared instead (see
`shared`): `shutdown` only hangs up, and a kept-alive runner found gone or stale is replaced once, before the run.
"""

from __future__ import annotations

import atexit
import hashlib
import json
from collections import OrderedDict
from contextlib import suppress
from pathlib import Path
from typing import Any

from fastcode.core.secrets import child_environ
from fastcode.testrunner.client import RunnerError, Stale, WarmRunner
from fastcode.testrunner.command import Invocation
from fastcode.tools.shell import CommandResult

MAX_RUNNERS = 2
"""Runners alive at once (each holds pytest and its plugins in memory)."""

DEFAULT_KEEP_ALIVE_S = 600.0
"""`agent.test_runner_keep_alive`'s default, for roots `prestart` was not told about."""

_Key = tuple[tuple[str, ...], str, str, bool, str]
_runners: OrderedDict[_Key, WarmRunner] = OrderedDict()
_failed: dict[_Key, str] = {}
keep_alive: dict[Path, float] = {}
"""Repo root -> seconds a runner started for it stays up without a request (0: it exits with this process)."""


def _key(invocation: Invocation, root: Path, keep_s: float, confine: dict[str, Any] | None = None) -> _Key:
    # A runner inherits the environment it was started in: a changed one (PYTHONPATH, PYTEST_*) needs another.
    environment = hashlib.sha256(repr(sorted(child_environ().items())).encode()).hexdigest()
    return invocation.python, str(root), environment, keep_s > 0, json.dumps(confine, sort_keys=True)


def runner_for(
    invocation: Invocation,
    root: Path,
    *,
    keep_alive_s: float | None = None,
    not_inode: int = 0,
    confine: dict[str, Any] | None = None,
) -> WarmRunner:
    """The live runner for this interpreter and root (confined as a whole by the `confine` spec), started (or found
    kept alive) now if there is none; RunnerError when there cannot be one (an earlier one failed to get ready, or it
    cannot be started)."""
    keep_s = keep_alive.get(root, DEFAULT_KEEP_ALIVE_S) if keep_alive_s is None else keep_alive_s
    key = _key(invocation, root, keep_s, confine)
    if key in _failed:
        raise RunnerError(_failed[key])
    runner = _runners.get(key)
    if runner is not None and (not runner.alive or (not_inode and runner.inode == not_inode)):
        runner.close()
        del _runners[key]
        runner = None
    if runner is None:
        try:
            runner = _runners[key] = WarmRunner(invocation.python, root, keep_alive_s=keep_s, not_inode=not_inode,
                                                confine=confine)  # fmt: skip
        except RunnerError as exc:
            _failed[key] = str(exc)
            raise
        while len(_runners) > MAX_RUNNERS:
            _runners.popitem(last=False)[1].close()
    _runners.move_to_end(key)
    return runner


def prestart(invocation: Invocation, root: Path, confine: dict[str, Any] | None = None) -> None:
    """Start the runner now (it imports pytest and the plugins while fastcode does other work)."""
    with suppress(RunnerError):  # the run will fall back and say why
        runner_for(invocation, root, confine=confine)


async def run(
    invocation: Invocation,
    root: Path,
    args: list[str],
    *,
    timeout_s: float,
    max_chars: int,
    cwd: Path | None = None,
    path: list[str] | None = None,
    sandbox: dict[str, Any] | None = None,
    confine: dict[str, Any] | None = None,
) -> CommandResult:
    """Run pytest with `args` in this invocation's warm runner (confined by the `confine` spec; in `cwd`, a copy of
    `root`, when given, with `path` first on sys.path; the child narrowed by the `sandbox` spec); RunnerError when it
    cannot serve the run."""
    where = {"cwd": cwd, "path": path or [], "sandbox": sandbox}
    key = _key(invocation, root, keep_alive.get(root, DEFAULT_KEEP_ALIVE_S), confine)
    runner = runner_for(invocation, root, confine=confine)
    try:
        try:
            return await runner.run(args, script=invocation.script, timeout_s=timeout_s, max_chars=max_chars, **where)
        except Stale:  # nothing ran: start a fresh kept-alive runner (unless another process just did) and use it
            runner = runner_for(invocation, root, not_inode=runner.inode or -1, confine=confine)
            return await runner.run(args, script=invocation.script, timeout_s=timeout_s, max_chars=max_chars, **where)
    except RunnerError as exc:
        if runner.closed and runner.ready is None and not isinstance(exc, Stale):
            _failed[key] = str(exc)  # it never got ready (a plugin failed to import…): it will not next time either
        raise


def shutdown() -> None:
    """Stop every runner of this process (kept-alive ones are only hung up on)."""
    while _runners:
        _runners.popitem()[1].close()


atexit.register(shutdown)
