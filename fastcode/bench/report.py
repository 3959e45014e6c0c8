"""`fastcode bench`: the speed figures, measured against the shipped scripted server with a latency model.

Figures (each the median of several runs): the "fix the failing test" case study at 150 ms TTFT / 200 tok/s decode /
5,000 tok/s prefill (wall time, model calls); process start to the first request on the wire; the cached share of
prompt tokens over calls 2..n; engine overhead per step (p50, p95); the case study's test run, warm runner vs
subprocess; four independent searches at once vs the slowest alone; and, when llama-server is installed, the
embedded model's cold vs warm TTFT and the product on it (`fastcode exec` on the case study with no endpoint
configured, cold then warm, see `fastcode.bench.exec_local`). Targets are printed beside the figures: this is a
report, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastcode.bench.case_study import CASE_LATENCY, CASE_SCRIPT, LONG_SCRIPT, make_case_repo
from fastcode.core.trace import TOOL_KINDS, build, read_trace, union_seconds
from fastcode.evals.report import percentile
from fastcode.testing.scripted_server import ScriptedServer


def _agent_run(work: Path, name: str, script: dict, cache_home: Path) -> dict:
    """One real `fastcode exec` process against a fresh scripted server; returns its measured figures."""
    repo = make_case_repo(work / name)
    with ScriptedServer(script, latency=CASE_LATENCY).start() as server:
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(cache_home),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            # The case repo needs no pytest plugins; fastcode's own dev plugins (textual snapshots…) add ~1 s a run.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        env.pop("CI", None)
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "fastcode", "exec", "fix the failing test", "--base-url", server.base_url,
             "--model", "bench", "--json"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        wall = time.time() - started
        first_request = (server.arrivals[0] - started) if server.arrivals else float("nan")
    result = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout else {}
    trace = next((repo / ".fastcode" / "runs").glob("*/trace.jsonl"))
    return {"wall_s": wall, "first_request_ms": first_request * 1000, "status": result.get("status"),
            "model_calls": result.get("model_calls"), "events": read_trace(trace)}  # fmt: skip


def overheads(events: list) -> list[float]:
    """Per step, in ms: step wall time minus the union of its model-call, tool, test and search-candidate spans."""
    builder = build(events)
    steps = {e.step: e.t - builder.origin for e in events if e.type == "step_started"}  # type: ignore[operator]
    ends = {e.step: e.t - builder.origin for e in events if e.type == "step_finished"}  # type: ignore[operator]
    out = []
    for step, begin in steps.items():
        end = ends.get(step)
        if end is None:
            continue
        busy = [(r.start, r.end) for r in builder.rows
                if r.end is not None and not r.warmup and r.kind in ("model", *TOOL_KINDS)
                and begin <= r.start <= end]  # fmt: skip
        out.append(max(0.0, (end - begin - union_seconds(busy)) * 1000))
    return out


def cached_share(events: list) -> float:
    calls = [e for e in events if e.type == "model_call_finished" and not e.warmup][1:]
    prompt = sum(c.prompt_tokens for c in calls)
    return sum(c.cached_tokens for c in calls) / prompt if prompt else 0.0


def bench_agent(runs: int) -> list[tuple[str, str, str, bool]]:
    with tempfile.TemporaryDirectory(prefix="fastcode-bench-") as tmp:
        work, cache_home = Path(tmp), Path(tmp) / "cache"
        _agent_run(work, "prime", CASE_SCRIPT, cache_home)  # a user who has run fastcode before: prefix on disk
        case = [_agent_run(work, f"case{i}", CASE_SCRIPT, cache_home) for i in range(runs)]
        long = [_agent_run(work, f"long{i}", LONG_SCRIPT, cache_home) for i in range(max(2, runs // 2))]
    ok = all(r["status"] == "finished" for r in case + long)
    wall = statistics.median(r["wall_s"] for r in case)
    calls = statistics.median(r["model_calls"] or 0 for r in case)
    first = statistics.median(r["first_request_ms"] for r in case + long)
    share = statistics.median(cached_share(r["events"]) for r in long)
    steps = [ms for r in case + long for ms in overheads(r["events"])]
    p50, p95 = (float("nan") if (v := percentile(steps, q)) is None else v for q in (0.5, 0.95))
    return [
        ("case study wall time (150 ms TTFT, 200 tok/s, 5k tok/s prefill)", f"{wall:.2f} s", "<= 1.2 s", wall <= 1.2),
        ("case study model calls (edit + finish in one call)", f"{calls:g}", "1", calls == 1),
        ("process start -> first request on the wire", f"{first:.0f} ms", "<= 150 ms", first <= 150),
        ("prompt tokens served from cache, calls 2..n", f"{share:.1%}", ">= 95%", share >= 0.95),
        ("engine overhead per step p50 / p95", f"{p50:.1f} / {p95:.1f} ms", "p50 <= 5 ms", p50 <= 5),
        ("all runs finished", "yes" if ok else "NO", "yes", ok),
    ]


def bench_version(runs: int) -> list[tuple[str, str, str, bool]]:
    """`fastcode --version` as a user runs it: a new process, the console script."""
    script = Path(sys.executable).parent / "fastcode"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fastcode"]
    times = []
    for _ in range(max(5, runs * 3)):
        started = time.perf_counter()
        subprocess.run([*command, "--version"], capture_output=True, check=True)
        times.append((time.perf_counter() - started) * 1000)
    ms = statistics.median(times)
    return [("fastcode --version", f"{ms:.0f} ms", "< 60 ms", ms < 60)]


def bench_tests(runs: int) -> list[tuple[str, str, str, bool]]:
    """The case-study repo's test command as the engine runs it after an edit: forked from the warm runner vs a
    subprocess (the runner's own start, once per session, is left out)."""
    from fastcode.context import testcmd

    command = f"{shlex.quote(sys.executable)} -m pytest -x -q"
    times: dict[str, list[float]] = {"warm": [], "subprocess": []}

    async def measure(root: Path) -> bool:
        testcmd.prestart(command, root)
        ok = (await testcmd.run_tests(command, root)).runner == "warm"
        for _ in range(max(5, runs * 2)):
            for mode in times:
                testcmd.prestart(command, root, runner="auto" if mode == "warm" else "subprocess")
                result = await testcmd.run_tests(command, root)
                ok = ok and result.runner == mode and result.exit_code == 1
                times[mode].append(result.ms)
        return ok

    with tempfile.TemporaryDirectory(prefix="fastcode-bench-tests-") as tmp:
        ok = asyncio.run(measure(make_case_repo(Path(tmp) / "case")))
        testcmd.shutdown()
    warm, cold = (statistics.median(times[mode]) for mode in ("warm", "subprocess"))
    return [
        ("test run: warm runner / subprocess (case study, pytest -x -q)", f"{warm:.0f} / {cold:.0f} ms",
         "warm <= 50%", ok and warm <= 0.5 * cold),
    ]  # fmt: skip


def make_search_repo(folder: Path, files: int = 5000, lines: int = 600) -> Path:
    for i in range(files):
        sub = folder / f"pkg{i % 30}"
        sub.mkdir(parents=True, exist_ok=True)
        body = "\n".join(
            f"def function_{i}_{j}(value):\n    return value * {j}  # filler text" for j in range(lines // 2)
        )
        (sub / f"module_{i}.py").write_text(body + "\n")
    return folder


async def _searches(root: Path, patterns: list[str]) -> tuple[list[float], float]:
    from fastcode.agent.tool_exec import ToolExecutor
    from fastcode.core.events import Event, ToolCallSpec
    from fastcode.tools import execute
    from fastcode.tools.base import ToolContext

    ctx = ToolContext(root)
    alone = []
    for pattern in patterns:
        started = time.perf_counter()
        await execute("search", json.dumps({"pattern": pattern, "max_results": 20}), ctx)
        alone.append(time.perf_counter() - started)

    class _Sink:
        def __call__(self, cls: type[Event], **fields: object) -> None:
            return None

    executor = ToolExecutor(ctx, _Sink())  # type: ignore[arg-type]
    calls = [ToolCallSpec(id=str(i), name="search", arguments=json.dumps({"pattern": p, "max_results": 20}))
             for i, p in enumerate(patterns)]  # fmt: skip
    started = time.perf_counter()
    await executor.run_turn(calls, 1)
    return alone, time.perf_counter() - started


def bench_search(runs: int) -> list[tuple[str, str, str, bool]]:
    patterns = ["function_9_1[0-9]\\b", "return value \\* 17 ", "filler text$", "def function_1[0-9]{3}_"]
    with tempfile.TemporaryDirectory(prefix="fastcode-bench-search-") as tmp:
        root = make_search_repo(Path(tmp))
        results = [asyncio.run(_searches(root, patterns)) for _ in range(runs)]
    slowest = statistics.median(max(alone) for alone, _ in results)
    together = statistics.median(wall for _, wall in results)
    ratio = together / slowest
    return [
        ("4 independent searches: slowest alone", f"{slowest * 1000:.0f} ms", ">= 50 ms", slowest >= 0.05),
        ("4 independent searches at once", f"{together * 1000:.0f} ms ({ratio:.2f}x)", "<= 1.2x", ratio <= 1.2),
    ]


def bench_local(runs: int) -> list[tuple[str, str, str, bool | None]]:
    """The embedded model's TTFT, cold / warm prefix (median of runs // 2), then the product on it: `fastcode exec`
    on the case study, one cold run and `runs` warm ones (see `fastcode.bench.exec_local`)."""
    from fastcode.bench import exec_local
    from fastcode.bench.ttft_local import run as run_local
    from fastcode.launcher.binaries import MissingBinary

    name = "embedded model TTFT, shared prefix, cold / warm"
    try:
        figures = run_local(max(1, runs // 2))
    except MissingBinary as exc:
        ttft: tuple[str, str, str, bool | None] = (name, f"skipped: {exc}", "warm <= 10% cold", None)
    else:
        cold, warm = figures["cold_ttft_ms"], figures["warm_ttft_ms"]
        ttft = (f"{name} ({figures['prefix_tokens']} tokens)", f"{cold:.0f} / {warm:.0f} ms", "warm <= 10% cold",
                warm <= 0.1 * cold and figures["prefix_ok"])  # fmt: skip
    return [ttft, *exec_local.rows(make_case_repo, runs)]


def print_table(rows: list[tuple[str, str, str, bool | None]]) -> None:
    from fastcode.core.tables import render

    shown = [(name, value, target, "-" if met is None else "yes" if met else "NO") for name, value, target, met in rows]
    print(render(("figure", "measured", "target", "met"), shown, right=(1, 2), width=240))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fastcode bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (medians are printed)")
    parser.add_argument(
        "--only",
        choices=("agent", "tests", "sandbox", "search", "local", "fix-search", "big-inputs"),
        action="append",
        help="just these figures (fix-search: the bundled suite on the embedded model, ~20 min; big-inputs: the "
        "tools on an 8 MB and a 100 MB file; neither by default)",
    )
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        print("fastcode bench: git is needed to build the case-study repo", file=sys.stderr)
        return 2
    wanted = args.only or ["agent", "tests", "sandbox", "search", "local"]
    rows: list[tuple[str, str, str, bool | None]] = []
    if "agent" in wanted:
        rows += bench_version(args.runs)
        rows += bench_agent(args.runs)
    if "tests" in wanted:
        rows += bench_tests(args.runs)
    if "sandbox" in wanted:
        from fastcode.bench import sandbox

        rows += sandbox.rows(args.runs)
    if "search" in wanted:
        rows += bench_search(args.runs)
    if "local" in wanted:
        rows += bench_local(args.runs)
    if "fix-search" in wanted:
        from fastcode.bench import fix_search

        rows += fix_search.rows(fix_search.run_suite())
    if "big-inputs" in wanted:
        from fastcode.bench import big_inputs

        rows += big_inputs.rows()
    print_table(rows)
    return 0
