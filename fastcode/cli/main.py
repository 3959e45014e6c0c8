"""Argument parsing and dispatch only. Heavy modules (openai, textual, tree_sitter, git) are imported inside the
command that needs them, so `fastcode --version` and `--help` stay instant."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from fastcode import __version__
from fastcode.core.errors import READER_GONE, fail, silence_output

COMMANDS = ("exec", "config", "trace", "undo", "trust", "sandbox", "serve", "eval", "bench")
MODULES = {"serve": "fastcode.cli.serve", "eval": "fastcode.cli.eval", "bench": "fastcode.bench.report"}
"""Commands that parse their own arguments."""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name (or a .gguf path with --local) for the default profile")
    parser.add_argument(
        "--base-url", help="OpenAI-compatible endpoint for the default profile, e.g. http://127.0.0.1:8080/v1"
    )
    parser.add_argument("--max-steps", type=int, help="model calls the run may take (default 30)")
    parser.add_argument("--timeout", type=float, help="wall-clock seconds the run may take (default 900)")
    parser.add_argument(
        "-c",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. -c agent.test_cmd='pytest -q' (repeatable)",
    )
    parser.add_argument("--repo", type=Path, help="repository root (default: the git root above the current folder)")
    parser.add_argument("--json", action="store_true", help="headless: one JSON event per line on stdout")
    parser.add_argument("--local", action="store_true", help="run on a local llama-server with the embedded model")
    parser.add_argument(
        "--approval",
        choices=("suggest", "auto-edit", "full-auto"),
        help="ask before writes and commands (suggest), before commands (auto-edit) or never (full-auto, default)",
    )
    parser.add_argument(
        "--sandbox",
        choices=("workspace-write", "read-only", "off"),
        help="what commands may write: the repository (workspace-write, default), nothing (read-only), anything (off)",
    )
    parser.add_argument(
        "--continue", dest="continue_", action="store_true", help="continue the latest run's conversation in this repo"
    )
    parser.add_argument("--resume", metavar="RUN", help="continue that run's conversation (a unique id prefix)")
    parser.add_argument(
        "--trust", action="store_true", help="honour this repository's .fastcode.toml in full for this run"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastcode",
        description='A terminal coding agent tuned for speed. `fastcode "TASK"` opens the TUI on a terminal and '
        "runs headless otherwise (or with --headless / exec / CI=true).",
        epilog="commands: exec TASK | config show | trace show|export|whatif [RUN] | undo [RUN] | trust | "
        "sandbox -- CMD | "
        "serve ... | eval ... | "
        "bench. Exit codes: 0 finished, 1 stopped unfinished, 2 usage/config error, 3 model endpoint error, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"fastcode {__version__}")
    parser.add_argument("task", nargs="?", help='what to do, e.g. "fix the failing test"')
    parser.add_argument("--headless", action="store_true", help="no TUI: print steps (or --json events)")
    _add_run_options(parser)
    return parser


def build_subparsers() -> dict[str, argparse.ArgumentParser]:
    parsers: dict[str, argparse.ArgumentParser] = {}
    p = parsers["exec"] = argparse.ArgumentParser(prog="fastcode exec", description="Run one task headless.")
    p.add_argument("task", nargs="?", help="what to do; `-` or none (with stdin not a terminal): read it from stdin")
    _add_run_options(p)
    p = parsers["config"] = argparse.ArgumentParser(prog="fastcode config", description="Inspect configuration.")
    p.add_argument("action", choices=("show",))
    p.add_argument("--repo", type=Path)
    p.add_argument("-c", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p = parsers["trace"] = argparse.ArgumentParser(
        prog="fastcode trace", description="Show a run's latency trace, or export it (Perfetto JSON, OpenTelemetry)."
    )
    p.add_argument("action", choices=("show", "export", "whatif"))
    p.add_argument("--profile", choices=("fast", "cpu"), help="whatif: a named latency model")
    p.add_argument("--ttft-ms", type=float, help="whatif: fixed time to first token")
    p.add_argument("--tps", type=float, help="whatif: decode tokens per second")
    p.add_argument("--prefill-tps", type=float, help="whatif: prefill tokens per second")
    p.add_argument("--cached-factor", type=float, default=0.0, help="whatif: cost of a cached token (0..1)")
    p.add_argument("--format", choices=("perfetto", "otlp"), default="perfetto", help="export: the format")
    p.add_argument("-o", "--output", help="export: the Perfetto file (default: trace.perfetto.json in the run)")
    p.add_argument("run", nargs="?", help="run id or a unique prefix (default: the latest run)")
    p.add_argument("--repo", type=Path)
    p.add_argument("--tui", action="store_true", help="open the trace in the TUI's latency panel")
    p = parsers["undo"] = argparse.ArgumentParser(prog="fastcode undo", description="Restore the files a run changed.")
    p.add_argument("run", nargs="?", help="run id or a unique prefix (default: the latest run)")
    p.add_argument("--repo", type=Path)
    p.add_argument("--force", action="store_true", help="restore even files edited since the run")
    p.add_argument("--list", action="store_true", help="list the recorded runs and what undo can do with each")
    p = parsers["trust"] = argparse.ArgumentParser(
        prog="fastcode trust",
        description="Trust a repository: its .fastcode.toml may then set models, endpoints, keys and commands.",
    )
    p.add_argument("--repo", type=Path, help="repository root (default: the git root above the current folder)")
    p.add_argument("--remove", action="store_true", help="stop trusting the repository")
    p.add_argument("--list", action="store_true", help="list the trusted repositories")
    p = parsers["sandbox"] = argparse.ArgumentParser(
        prog="fastcode sandbox",
        description="Run one command exactly as the agent would (in the repository root, /bin/sh, the sandbox and "
        "environment of a run) to see what it may do. Example: fastcode sandbox -- 'touch ../x'",
    )
    p.add_argument("--repo", type=Path, help="repository root (default: the git root above the current folder)")
    p.add_argument("--sandbox", choices=("workspace-write", "read-only", "off"), help="the mode to try")
    p.add_argument("-c", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    return parsers


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `fastcode config show | head`: the reader is gone; exit quietly, as git does
        silence_output()
        return READER_GONE


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _starts_a_run(argv):
        from fastcode.models import faststart

        faststart.begin(argv)
    try:
        if argv and argv[0] in COMMANDS:
            return dispatch(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    if args.task and (word := _lone_word(args.task)):
        return fail(word)
    if not args.task and _interactive() and not args.headless:
        return _run_tui(args)
    args.task = _task_or_stdin(args.task)
    if not args.task:
        return fail('no task given: fastcode "TASK", or the task on stdin (see fastcode --help)')
    headless = args.headless or args.json or not _interactive()
    return _run_task(args, headless=headless)


def _lone_word(task: str) -> str:
    """Why a one-word task is not run ("" when it is more than one word): `fastcode help` or a mistyped command
    should not start the model. A one-word task still runs with `fastcode exec WORD`."""
    if not re.fullmatch(r"[A-Za-z][\w-]*", task):
        return ""
    if task.lower() in ("help", "-h"):
        return 'usage: fastcode [options] "TASK" | fastcode COMMAND ... (see fastcode --help)'
    import difflib

    close = difflib.get_close_matches(task, COMMANDS, n=1, cutoff=0.6)
    hint = f" (did you mean `fastcode {close[0]}`?)" if close else ""
    return f"'{task}' is not a command{hint}; to run a one-word task: fastcode exec {task}"


def _task_or_stdin(task: str | None) -> str:
    """The task; `-`, or none with stdin not a terminal, reads it from stdin (`echo "fix it" | fastcode exec`)."""
    if task == "-" or (not task and not sys.stdin.isatty()):
        return sys.stdin.read().strip()
    return task or ""


def _starts_a_run(argv: list[str]) -> bool:
    if not argv or any(a in ("-h", "--help", "--version") for a in argv):
        return False
    if len(argv) == 1 and _lone_word(argv[0]):
        return False
    return argv[0] == "exec" or argv[0] not in COMMANDS


def _interactive() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


def dispatch(command: str, argv: list[str]) -> int:
    if command in MODULES:
        from importlib import import_module

        module = import_module(MODULES[command])
        return int(module.main(argv))
    parser = build_subparsers()[command]
    # `trace export --format otlp RUN`: options may come before the run id too
    args = parser.parse_intermixed_args(argv) if command == "trace" else parser.parse_args(argv)
    if command == "exec":
        args.task = _task_or_stdin(args.task)
        if not args.task:
            return fail('no task given: fastcode exec "TASK", or the task on stdin')
        return _run_task(args, headless=True)
    from fastcode.cli import basic

    return int(getattr(basic, command)(args))


def _run_task(args: argparse.Namespace, *, headless: bool) -> int:
    from fastcode.cli.run import run_task

    return run_task(args, headless=headless)


def _run_tui(args: argparse.Namespace) -> int:
    from fastcode.cli.run import run_tui

    return run_tui(args)


if __name__ == "__main__":
    raise SystemExit(main())
