"""`fastcode eval SUITE.jsonl ...` and `fastcode eval make-tasks REPO ...`: argument parsing and checks only.

Bad input is one line on stderr and exit 2 (so is --ray without Ray installed); no Ray cluster answering is exit 3.
A finished run exits 0 when no instance errored (and, with --gold, every instance resolved), 1 otherwise, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NoReturn

USAGE = 2


class _Usage(Exception):
    pass


class _Failed(Exception):
    """Not the user's input: e.g. no Ray cluster answered (exit 3)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


def _positive(kind: type):
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return check


def suite_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fastcode eval", description="Run an eval suite (JSONL, SWE-bench fields) and report.")
    p.add_argument("suite", type=Path, help="suite file, one instance per line")
    p.add_argument(
        "--workers",
        type=_positive(int),
        help="instances run at once (default 1; with --ray, as many as the cluster's CPUs allow)",
    )
    p.add_argument("--limit", type=_positive(int), help="run only the first N selected instances")
    p.add_argument("--only", action="append", default=[], metavar="ID", help="run this instance (repeatable)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for the agent")
    p.add_argument("--model", help="model name for the agent, or scripted:DIR to replay DIR/<instance_id>.json")
    p.add_argument(
        "-c",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override passed to every agent run (repeatable)",
    )
    p.add_argument("--max-steps", type=_positive(int), help="model calls per instance (default: config)")
    p.add_argument("--timeout", type=_positive(float), help="agent seconds per instance (default: config)")
    p.add_argument("--out", type=Path, help="output folder (default .fastcode/evals/<suite>-<mode>-<time>)")
    p.add_argument("--gold", action="store_true", help="apply each instance's gold patch instead of the agent")
    p.add_argument(
        "--failing-tests",
        action="store_true",
        help="give the agent the failing tests (the hidden tests in its copy, task 'Fix the failing tests.')",
    )
    p.add_argument("--resume", action="store_true", help="skip instances already in --out (errors are retried)")
    p.add_argument("--json", action="store_true", help="no progress; one JSON line per instance, then the summary")
    p.add_argument("--keep", action="store_true", help="keep each instance's copy (its path goes in results)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="run each instance as a Ray task: auto (an existing cluster, the default), local (start one here), "
        "or a cluster address; needs pip install 'fastcode[scale]'",
    )
    p.add_argument("--ray-cpus", type=_positive(float), default=1.0, help="CPUs Ray reserves per instance (default 1)")
    return p


def make_tasks_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="fastcode eval make-tasks",
        description="Inject single-location bugs into a repository whose tests pass; write a suite.",
    )
    p.add_argument("repo", type=Path, help="a git repository or a plain folder, with passing pytest tests")
    p.add_argument("--n", type=_positive(int), required=True, help="instances to keep")
    p.add_argument("--out", type=Path, required=True, help="suite file to write (JSONL)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same suite (default 0)")
    p.add_argument("--test-cmd", default="python -m pytest -q", help="how to run the tests (default: %(default)s)")
    p.add_argument("--workers", type=_positive(int), default=2, help="mutants tested at once (default 2)")
    p.add_argument("--max-fail", type=_positive(int), default=10, help="keep mutants failing 1..N tests (default 10)")
    p.add_argument("--json", action="store_true", help="print the written instances' ids as JSON")
    return p


def main(argv: list[str]) -> int:
    try:
        if argv and argv[0] == "make-tasks":
            return _make_tasks(make_tasks_parser().parse_args(argv[1:]))
        if argv and argv[0] in ("-h", "--help"):
            suite_parser().print_help()
            print("\n  or: fastcode eval make-tasks REPO --n K --out SUITE.jsonl [--seed S]")
            return 0
        return _eval(suite_parser().parse_args(argv))
    except _Usage as exc:
        sys.stderr.write(f"fastcode eval: {exc}\n")
        return USAGE
    except _Failed as exc:
        sys.stderr.write(f"fastcode eval: {exc}\n")
        return exc.exit_code
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


def _eval(args: argparse.Namespace) -> int:
    from fastcode.evals.agent import AgentOptions
    from fastcode.evals.harness import SuiteRun, run_suite, select
    from fastcode.evals.instances import load_suite
    from fastcode.evals.report import RESULTS
    from fastcode.evals.runner import RunOptions

    try:
        entries = load_suite(args.suite)
    except (OSError, UnicodeDecodeError) as exc:
        raise _Usage(f"cannot read suite {args.suite}: {getattr(exc, 'strerror', None) or exc}") from None
    if not entries:
        raise _Usage(f"{args.suite}: no instances")
    known = {e.instance_id for e in entries}
    if missing := [i for i in args.only if i not in known]:
        raise _Usage(f"--only {missing[0]}: no such instance in {args.suite}")
    if args.resume and args.out is None:
        raise _Usage("--resume needs --out DIR (the folder of the run to continue)")
    if args.out is not None and not args.resume and (args.out / RESULTS).exists():
        raise _Usage(f"{args.out} already holds results: add --resume to continue it, or pick another --out")
    mode = "gold" if args.gold else "agent"
    agent = AgentOptions(overrides=args.overrides, max_steps=args.max_steps, timeout_s=args.timeout)
    model_name = "gold"
    if mode == "agent":
        model_name = _configure_agent(args, agent)
    label = "gold" if args.gold else "scripted" if agent.scripted_dir else "agent"
    out = args.out or Path(".fastcode/evals") / f"{args.suite.stem}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    chosen = select(entries, args.only, args.limit)
    run = RunOptions(out=out.resolve(), mode=mode, agent=agent, keep=args.keep, failing_tests=args.failing_tests)
    pool = _ray_pool(args, run) if args.ray else None
    job = SuiteRun(
        suite=args.suite,
        entries=chosen,
        run=run,
        workers=args.workers or (pool.capacity() if pool else 1),
        resume=args.resume,
        model_name=model_name,
        order=[e.instance_id for e in entries],
        meta={
            "mode": label,
            "max_steps": args.max_steps,
            "timeout_s": args.timeout,
            "failing_tests": args.failing_tests,
        }
        | ({"ray": args.ray, "ray_cpus": args.ray_cpus} if args.ray else {}),
    )

    def emit(result) -> None:
        print(json.dumps({"type": "instance", **result.model_dump(exclude={"model_patch"})}), flush=True)

    try:
        summary, _ = run_suite(
            job, stream=None if args.json else sys.stderr, on_result=emit if args.json else None, pool=pool
        )
    except KeyboardInterrupt:
        sys.stderr.write(f"fastcode eval: interrupted; finished instances are in {out} (continue with --resume)\n")
        return 130
    if args.json:
        print(json.dumps({"type": "summary", "out": str(out), **summary}), flush=True)
    else:
        from fastcode.core.tables import render
        from fastcode.evals.report import headline, metrics

        print(f"Eval: {summary['suite']}\n{headline(summary)}\n")
        print(render(("metric", "value"), metrics(summary)))
        print(f"\nresults: {out}/ (summary.md, results.jsonl, predictions.jsonl)")
    failed = summary["errors"] or (mode == "gold" and summary["resolved"] < summary["instances"])
    return 1 if failed else 0


def _ray_pool(args: argparse.Namespace, run):
    """The Ray pool for --ray: one line and exit 2 without Ray, exit 3 when no cluster answers."""
    if args.keep:
        raise _Usage("--keep does not combine with --ray: copies stay on the nodes that ran them")
    from fastcode.evals.ray_pool import RayPool, RayUnavailable

    try:
        return RayPool(args.ray, run, cpus=args.ray_cpus)
    except RayUnavailable as exc:
        raise _Failed(str(exc), exc.exit_code) from None


def _configure_agent(args: argparse.Namespace, agent) -> str:
    """Fill the agent options from the flags; check the config once here rather than fail every instance."""
    from fastcode.cli.run import NO_ENDPOINT
    from fastcode.core.config import ConfigError, load_settings
    from fastcode.evals.agent import KILL_GRACE_S

    model = args.model or ""
    scripted = model.startswith("scripted:")
    flags = {
        "models.default.model": None if scripted else args.model,
        "models.default.base_url": args.base_url,
        "agent.max_steps": args.max_steps,
        "agent.timeout_s": args.timeout,
    }
    try:
        loaded = load_settings(None, overrides=args.overrides, flags=flags)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None
    agent.kill_after_s = loaded.settings.agent.timeout_s + KILL_GRACE_S
    if scripted:
        folder = Path(model.removeprefix("scripted:")).expanduser()
        if not folder.is_dir():
            raise _Usage(f"--model {model}: not a folder of <instance_id>.json trajectories")
        agent.scripted_dir = folder.resolve()
        return model
    if not loaded.endpoint_configured():
        from fastcode.launcher.embedded import local_available
        from fastcode.launcher.model_parts import EMBEDDED

        if not local_available(loaded):
            raise _Usage(NO_ENDPOINT)
        # Each agent starts the embedded model itself; the first leaves it up (local.keep_alive) for the others.
        return f"fastcode/{EMBEDDED.name} (embedded)"
    agent.base_url, agent.model = args.base_url, args.model
    _, profile = loaded.settings.profile("act")
    return f"fastcode/{profile.model}"


def _make_tasks(args: argparse.Namespace) -> int:
    from fastcode.evals.make_tasks import GeneratorError, make_tasks

    if not args.repo.is_dir():
        raise _Usage(f"{args.repo}: not a folder")
    try:
        report = make_tasks(
            args.repo,
            n=args.n,
            out=args.out,
            seed=args.seed,
            test_cmd=args.test_cmd,
            workers=args.workers,
            max_fail=args.max_fail,
            stream=None if args.json else sys.stderr,
        )
    except GeneratorError as exc:
        raise _Usage(str(exc)) from None
    if args.json:
        print(json.dumps({"out": str(args.out), "instances": report.kept, "tried": report.tried}))
    return 0 if len(report.kept) >= args.n else 1
