"""Benchmark: test-time search on the bundled suite with the embedded model.

Runs `fastcode eval` on the bundled suite (15 bugs in three small libraries) with `--failing-tests` (the agent sees
the failing tests and is asked to fix them) and no endpoint configured, so each instance's `fastcode exec` uses the
embedded Qwen2.5-Coder-1.5B-Instruct on llama-server (kept alive between instances). From the eval's summary it
prints resolved@1 (the first answer fixed it), resolved with search (any candidate, or the run after it), candidates
drawn, and the median agent seconds of a resolved instance, beside the targets: search resolves at least 1.5x as
many as resolved@1, in at most 20 s per resolved instance (median).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastcode.bench.exec_local import Row, _env
from fastcode.core.resources import data_dir

GAIN_TARGET, SECONDS_TARGET = 1.5, 20.0
TIMEOUT_S, MAX_STEPS = 150, 8
"""Per instance: bounded so a hopeless instance costs at most a few minutes of the benchmark."""


def suite() -> Path:
    return data_dir("evals") / "suites" / "bundled.jsonl"


def run_suite(workers: int = 1) -> dict[str, Any]:
    """The eval's summary object (its last JSON line)."""
    with tempfile.TemporaryDirectory(prefix="fastcode-bench-fix-search-") as tmp:
        env = _env(Path(tmp))
        command = [sys.executable, "-m", "fastcode", "eval", str(suite()), "--failing-tests", "--json",
                   "--out", str(Path(tmp) / "out"), "--timeout", str(TIMEOUT_S), "--max-steps", str(MAX_STEPS),
                   "--workers", str(workers)]  # fmt: skip
        proc = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        summary = next((line for line in reversed(lines) if line.get("type") == "summary"), None)
        if summary is None:
            raise RuntimeError(f"fastcode eval gave no summary (exit {proc.returncode}): {proc.stderr[-500:]}")
        return summary


def rows(summary: dict[str, Any]) -> list[Row]:
    n, at_1, resolved = summary["instances"], summary["resolved_at_1"], summary["resolved"]
    median = summary.get("resolved_wall_s_median")
    gain = resolved / at_1 if at_1 else (float("inf") if resolved else 0.0)
    drawn = summary["candidates"]
    return [
        ("fix search: resolved@1 (bundled, embedded model)", f"{at_1}/{n}", "", None),
        ("fix search: resolved with search", f"{resolved}/{n} ({gain:.1f}x)", f">= {GAIN_TARGET}x @1",
         gain >= GAIN_TARGET),
        ("fix search: median s per resolved instance", "-" if median is None else f"{median:.1f} s",
         f"<= {SECONDS_TARGET:.0f} s", median is not None and median <= SECONDS_TARGET),
        ("fix search: candidates drawn (searched, won)",
         f"{drawn['total']} ({drawn['searched']}, {drawn['won_by_search']})", "", None),
    ]  # fmt: skip
