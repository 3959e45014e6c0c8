"""From parsed CLI arguments to a running Session: settings, endpoint choice, then headless or TUI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fastcode.core.config import ConfigError, Loaded, Settings, load_settings
from fastcode.core.errors import fail
from fastcode.core.paths import find_repo_root, worked_on

if TYPE_CHECKING:
    from fastcode.agent.tool_exec import Approver

NO_ENDPOINT = (
    "no model endpoint configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for other providers), pass --base-url, "
    "or install the embedded local model with: pip install 'fastcode[local]'"
)


def load_for_run(args: argparse.Namespace) -> tuple[Path, Loaded]:
    root = (args.repo or find_repo_root(Path.cwd())).resolve()
    if not root.is_dir():
        raise ConfigError(f"--repo {args.repo}: not a folder")
    worked_on(root)  # before llama-server is looked up: never from a folder inside the repository
    flags = {
        "models.default.model": getattr(args, "model", None),
        "models.default.base_url": getattr(args, "base_url", None),
        "agent.max_steps": getattr(args, "max_steps", None),
        "agent.timeout_s": getattr(args, "timeout", None),
        "agent.approval": getattr(args, "approval", None),
        "sandbox.mode": getattr(args, "sandbox", None),
    }
    return root, load_settings(
        root, overrides=args.overrides, flags=flags, trusted=True if getattr(args, "trust", False) else None
    )


def run_task(args: argparse.Namespace, *, headless: bool) -> int:
    try:
        root, loaded = load_for_run(args)
    except ConfigError as exc:
        return fail(str(exc))
    if loaded.ignored:
        print(f"fastcode: {loaded.ignored}", file=sys.stderr)
    loaded = _unsandboxed_commands_ask(loaded)
    approver = None
    if headless:
        from fastcode.frontends.ask import pick

        try:
            approver = pick(loaded.settings.agent.approval)
        except ValueError as exc:
            return fail(str(exc))
    from fastcode.launcher.embedded import LocalError, local_for_run

    try:  # --local, or nothing configured and the local extra installed: a llama-server for this run only
        with local_for_run(args, loaded, root) as settings:
            if settings is None:
                return fail(NO_ENDPOINT)
            return _run_session(settings, root, args, headless=headless, approver=approver)
    except LocalError as exc:
        return fail(str(exc), exc.exit_code)


def _unsandboxed_commands_ask(loaded: Loaded) -> Loaded:
    """Where the configured sandbox cannot be enforced, say so once and ask before every command (as auto-edit
    does) instead of running it unconfined; `sandbox.mode = "off"` runs them as before."""
    if loaded.settings.sandbox.mode == "off":
        return loaded
    from fastcode.sandbox.policy import support

    if support().enforced:
        return loaded
    agent = loaded.settings.agent
    asking = agent.approval if agent.approval != "full-auto" else "auto-edit"
    print(f"fastcode: sandbox {loaded.settings.sandbox.mode} is {support().describe()}: commands ask for approval "
          "first (sandbox.mode='off' runs them unasked)", file=sys.stderr)  # fmt: skip
    settings = loaded.settings.model_copy(update={"agent": agent.model_copy(update={"approval": asking})})
    return loaded.model_copy(update={"settings": settings})


def _run_session(
    settings: Settings, root: Path, args: argparse.Namespace, *, headless: bool, approver: Approver | None = None
) -> int:
    from fastcode.agent.engine import Session

    session = Session(settings, root, approver=approver)
    if getattr(args, "continue_", False) or getattr(args, "resume", None):
        from fastcode.agent.conversation import ResumeError, load
        from fastcode.core.paths import find_run, no_run

        if getattr(args, "continue_", False) and args.resume:
            return fail("--continue or --resume RUN, not both")
        folder = find_run(root, args.resume)
        if folder is None:
            return fail(f"nothing to continue: {no_run(root, args.resume)}")
        try:
            session.resume(load(folder))
        except ResumeError as exc:
            return fail(str(exc))
    if headless:
        from fastcode.frontends.headless import run_headless

        return asyncio.run(run_headless(session, args.task, json_mode=args.json))
    from fastcode.frontends.tui import run_app

    return run_app(session, args.task)


def run_tui(args: argparse.Namespace) -> int:
    """The app with no task yet (`fastcode` on a terminal)."""
    args.task = None
    return run_task(args, headless=False)
