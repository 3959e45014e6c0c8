"""The small subcommands: `config show`, `trace show`, `undo`, `trust`, `sandbox`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fastcode.core.config import ConfigError, load_settings
from fastcode.core.errors import fail
from fastcode.core.paths import find_repo_root, find_run, no_run

if TYPE_CHECKING:
    from fastcode.core.trace import TraceBuilder


def _root(args: argparse.Namespace) -> Path:
    return (args.repo or find_repo_root(Path.cwd())).resolve()


def config(args: argparse.Namespace) -> int:
    """Print the merged config as TOML fastcode reads back, each key with the layer it came from; keys masked."""
    from fastcode.cli.config_show import lines

    try:
        loaded = load_settings(_root(args), overrides=args.overrides)
    except ConfigError as exc:
        return fail(str(exc))
    print("\n".join(lines(loaded)).rstrip())
    return 0


def sandbox(args: argparse.Namespace) -> int:
    """Run one command as the `run` tool would: /bin/sh -c in the repository root, the run's environment (secrets
    withheld) and sandbox; its output goes straight to the terminal and its exit code is fastcode's."""
    import shlex
    import subprocess

    from fastcode.core import secrets
    from fastcode.sandbox.policy import Sandbox

    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not words:
        return fail("no command given: fastcode sandbox -- COMMAND")
    root, flags = _root(args), {"sandbox.mode": args.sandbox}
    try:
        settings = load_settings(root, overrides=args.overrides, flags=flags).settings
    except ConfigError as exc:
        return fail(str(exc))
    secrets.configure(settings.security.env_deny, (p.api_key_env for p in settings.models.values()))
    box = Sandbox.from_settings(settings.sandbox, root)
    print(f"fastcode sandbox: {box.describe()}", file=sys.stderr)
    command = words[0] if len(words) == 1 else shlex.join(words)
    env = box.environ() if box.active else None
    try:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=root, stdin=subprocess.DEVNULL,
                              env=secrets.child_environ(env), preexec_fn=box.preexec(root), check=False)  # fmt: skip
    except subprocess.SubprocessError as exc:
        return fail(f"the sandbox could not be applied: {exc}", 126)
    finally:
        box.close()
    return done.returncode if done.returncode >= 0 else 128 - done.returncode


def trust(args: argparse.Namespace) -> int:
    """Add the repository to the trust list (or take it out, or list them)."""
    from fastcode.core.trust import set_trusted, trust_file, trusted_repos

    if args.list:
        for repo in trusted_repos():
            print(repo)
        return 0
    root = _root(args)
    if not root.is_dir():
        return fail(f"--repo {args.repo}: not a folder")
    try:
        path = set_trusted(root, not args.remove)
    except OSError as exc:
        return fail(f"cannot write {trust_file()}: {exc.strerror}")
    verb = "no longer trusted" if args.remove else "trusted: its .fastcode.toml may set models, keys and commands"
    print(f"{root}: {verb} ({path})")
    return 0


def _shown(path: str) -> str:
    """A path for the terminal: bytes that are not UTF-8 (kept as surrogates to restore the file) shown as U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def trace(args: argparse.Namespace) -> int:
    from fastcode.core.trace import build, format_table, read_trace

    root = _root(args)
    folder = find_run(root, args.run)
    if folder is None:
        return fail(no_run(root, args.run))
    if args.action == "export":
        return _export(build(read_trace(folder / "trace.jsonl")), folder, args)
    if args.action == "whatif":
        return _whatif(build(read_trace(folder / "trace.jsonl")), folder, args)
    if args.tui:
        from fastcode.frontends.tui.replay import replay

        return int(replay(folder / "trace.jsonl"))
    print(f"run {folder.name}")
    print(format_table(build(read_trace(folder / "trace.jsonl"))))
    return 0


def _export(builder: TraceBuilder, folder: Path, args: argparse.Namespace) -> int:
    """`trace export`: Perfetto JSON to a file (default: next to the trace), or OTLP spans to the collector."""
    if args.format == "otlp":
        from fastcode.frontends.otlp import ExportError, send, traces_url

        try:
            count = send(builder)
        except ExportError as exc:
            return fail(str(exc), exc.exit_code)
        print(f"sent {count} spans of run {folder.name} to {traces_url()}")
        return 0
    import json

    from fastcode.frontends.perfetto import to_trace_events

    out = Path(args.output) if args.output else folder / "trace.perfetto.json"
    try:
        out.write_text(json.dumps(to_trace_events(builder)), encoding="utf-8")
    except OSError as exc:
        return fail(f"cannot write {out}: {exc.strerror}")
    print(f"{out}  (open it in https://ui.perfetto.dev or chrome://tracing)")
    return 0


def _whatif(builder: TraceBuilder, folder: Path, args: argparse.Namespace) -> int:
    import dataclasses

    from fastcode.core.whatif import PROFILES, LatencyModel, format_whatif, replay

    given = (args.ttft_ms, args.tps, args.prefill_tps)
    if args.profile and any(v is not None for v in given):
        return fail("trace whatif: --profile or --ttft-ms/--tps/--prefill-tps, not both")
    if not args.profile and any(v is None for v in given):
        return fail("trace whatif: give --profile fast|cpu, or all of --ttft-ms, --tps and --prefill-tps")
    for flag, value, low in (("--ttft-ms", args.ttft_ms, 0.0), ("--tps", args.tps, 1e-9),
                             ("--prefill-tps", args.prefill_tps, 1e-9)):  # fmt: skip
        if value is not None and not value >= low:
            return fail(f"trace whatif: {flag} must be {'>= 0' if low == 0 else '> 0'} (got {value:g})")
    if not 0 <= args.cached_factor <= 1:
        return fail(f"trace whatif: --cached-factor must be between 0 and 1 (got {args.cached_factor:g})")
    if args.profile:
        model = dataclasses.replace(PROFILES[args.profile], cached_factor=args.cached_factor)
    else:
        model = LatencyModel(args.ttft_ms, args.tps, args.prefill_tps, args.cached_factor)
    print(f"run {folder.name}")
    print(format_whatif(replay(builder, model), model))
    return 0


def undo(args: argparse.Namespace) -> int:
    from fastcode.checkpoint.checkpointer import UndoRefused
    from fastcode.checkpoint.checkpointer import undo as undo_run

    root = _root(args)
    if args.list:
        from fastcode.checkpoint.checkpointer import list_runs
        from fastcode.core.paths import runs_root

        records = list_runs(root, runs_root(root))
        for record in records:
            print(f"{record.run_id}  {record.state}")
        if not records:
            print("no runs recorded in this repository")
        return 0
    folder = find_run(root, args.run)
    if folder is None:
        return fail(f"nothing to undo: {no_run(root, args.run)}")
    try:
        result = undo_run(root, folder, force=args.force)
    except UndoRefused as exc:
        return fail(_shown(str(exc)), 1)
    except Exception as exc:  # e.g. already undone, missing checkpoint
        return fail(f"undo {folder.name}: {exc}", 1)
    for warning in result.warnings:
        print(f"note: {_shown(warning)}")
    for path in result.restored:
        print(f"restored {_shown(path)}")
    for path in result.removed:
        print(f"removed  {_shown(path)}")
    if not (result.restored or result.removed):
        print(f"run {folder.name} changed no files")
    sys.stdout.flush()
    return 0
