"""What an eval writes in its output folder.

- `predictions.jsonl`: SWE-bench's format (instance_id, model_name_or_path, model_patch), so its harness can score it.
- `results.jsonl`: one `InstanceResult` per instance: resolved, status, seconds, calls, tokens, TTFT, time split.
- `summary.json` and `summary.md`: resolved %, median and p95 wall, calls per instance, cached share, and where
  the time went (model vs tools vs everything else).
- `instances/<id>/`: the agent's trace, events and log, the test output, the patch.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

RESULTS, PREDICTIONS = "results.jsonl", "predictions.jsonl"


class InstanceResult(BaseModel):
    instance_id: str
    resolved: bool = False
    status: Literal["resolved", "unresolved", "error"] = "error"
    """error: the instance could not be run or scored (see `error`); it is not the agent's failure."""
    mode: str = "agent"
    error: str | None = None
    note: str | None = None
    agent_status: str | None = None
    """The agent's own ending: finished, max_steps, timeout, interrupted, error."""
    exit_code: int | None = None
    wall_s: float | None = None
    """The agent's wall-clock seconds (None without an agent)."""
    total_s: float = 0.0
    """The whole instance: copy, setup, agent, tests."""
    tests_s: float | None = None
    steps: int = 0
    model_calls: int = 0
    candidates: int = 0
    """Candidate fixes the agent's test-time search drew (0: no search ran)."""
    winner: int | None = None
    """The candidate the tests chose (1: the first answer)."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms_median: float | None = None
    model_s: float = 0.0
    tool_s: float = 0.0
    other_s: float = 0.0
    fail_to_pass: str | None = None
    """"passed/total"."""
    pass_to_pass: str | None = None
    failing: list[str] = []
    trace: str | None = None
    workspace: str | None = None
    model_patch: str = ""


def read_results(out: Path) -> dict[str, InstanceResult]:
    """The results already in `out`, the last line per instance winning."""
    path = out / RESULTS
    results: dict[str, InstanceResult] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    result = InstanceResult.model_validate_json(line)
                except ValueError:
                    continue
                results[result.instance_id] = result
    return results


def append_result(out: Path, result: InstanceResult, model_name: str) -> None:
    """Record one finished instance at once, so an interrupted run keeps it (`--resume`)."""
    with (out / RESULTS).open("a", encoding="utf-8") as handle:
        handle.write(result.model_dump_json(exclude={"model_patch"}) + "\n")
    with (out / PREDICTIONS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(_prediction(result, model_name)) + "\n")


def _prediction(result: InstanceResult, model_name: str) -> dict[str, str]:
    return {"instance_id": result.instance_id, "model_name_or_path": model_name, "model_patch": result.model_patch}


def rewrite(out: Path, order: list[str], model_name: str) -> list[InstanceResult]:
    """Compact both JSONL files to one line per instance, in suite order (instances `order` does not know, e.g. a
    since edited suite, go last); returns those results, which the summary covers."""
    results = read_results(out)
    patches: dict[str, str] = {}
    path = out / PREDICTIONS
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                patches[item["instance_id"]] = item.get("model_patch", "")
    rank = {instance_id: i for i, instance_id in enumerate(order)}
    ordered = sorted(results.values(), key=lambda r: rank.get(r.instance_id, len(rank)))
    (out / RESULTS).write_text("".join(r.model_dump_json(exclude={"model_patch"}) + "\n" for r in ordered))
    lines = []
    for result in ordered:
        result.model_patch = patches.get(result.instance_id, "")
        lines.append(json.dumps(_prediction(result, model_name)) + "\n")
    path.write_text("".join(lines))
    return ordered


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def summarize(results: list[InstanceResult], meta: dict[str, Any]) -> dict[str, Any]:
    n = len(results)
    resolved = sum(r.resolved for r in results)
    scored = [r for r in results if r.status != "error"]
    walls = [r.wall_s for r in scored if r.wall_s is not None]
    totals = [r.total_s for r in results]
    ran = [r for r in scored if r.mode == "agent"]
    prompt = sum(r.prompt_tokens for r in ran)
    cached = sum(r.cached_tokens for r in ran)
    time_split = {k: round(sum(getattr(r, f"{k}_s") for r in ran), 2) for k in ("model", "tool", "other")}
    ttfts = [r.ttft_ms_median for r in ran if r.ttft_ms_median is not None]
    # resolved@1: the first answer did it (the search's first candidate won, or no search ran at all)
    at_1 = sum(r.resolved and (r.candidates == 0 or r.winner == 1) for r in results)
    resolved_walls = [r.wall_s for r in scored if r.resolved and r.wall_s is not None]
    return meta | {
        "instances": n,
        "resolved": resolved,
        "unresolved": sum(r.status == "unresolved" for r in results),
        "errors": sum(r.status == "error" for r in results),
        "resolved_pct": round(100 * resolved / n, 1) if n else 0.0,
        "wall_s": {
            "median": _r(statistics.median(walls)) if walls else None,
            "p95": _r(percentile(walls, 0.95)),
            "total": _r(sum(walls)),
        },
        "instance_s": {
            "median": _r(statistics.median(totals)) if totals else None,
            "p95": _r(percentile(totals, 0.95)),
        },
        "agent_s_per_resolved": _r(sum(walls) / resolved) if resolved and walls else None,
        "resolved_at_1": at_1,
        "resolved_wall_s_median": _r(statistics.median(resolved_walls)) if resolved_walls else None,
        "candidates": {
            "total": sum(r.candidates for r in ran),
            "searched": sum(r.candidates > 0 for r in ran),
            "won_by_search": sum(r.resolved and (r.winner or 0) > 1 for r in ran),
        },
        "model_calls": {
            "total": sum(r.model_calls for r in ran),
            "per_instance": _r(sum(r.model_calls for r in ran) / len(ran)) if ran else None,
        },
        "steps_per_instance": _r(sum(r.steps for r in ran) / len(ran)) if ran else None,
        "tokens": {
            "prompt": prompt,
            "cached": cached,
            "completion": sum(r.completion_tokens for r in ran),
            "cached_share": round(cached / prompt, 3) if prompt else None,
        },
        "ttft_ms_median": _r(statistics.median(ttfts), 1) if ttfts else None,
        "time_s": time_split,
        "errors_by_instance": {r.instance_id: r.error for r in results if r.status == "error"},
    }


def _fmt(value: Any, suffix: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _status(r: InstanceResult) -> str:
    return r.status if r.status != "error" else f"error: {(r.error or '').replace('|', '/')[:80]}"


def _tests(r: InstanceResult) -> str:
    return f"{r.fail_to_pass or '-'} / {r.pass_to_pass or '-'}"


def metrics(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's figures as (metric, value): the table of summary.md and of the terminal."""
    s = summary
    split = s["time_s"]
    spent = sum(split.values())
    share = " · ".join(f"{k} {v:.1f} s ({v / spent:.0%})" for k, v in split.items()) if spent else "-"
    cached = s["tokens"]["cached_share"]
    rows = [
        ("resolved", f"{s['resolved']}/{s['instances']} ({s['resolved_pct']:.1f}%)"),
        ("unresolved / errors", f"{s['unresolved']} / {s['errors']}"),
    ]
    if s["mode"] != "gold":
        rows += [
            ("agent wall, median / p95",
             f"{_fmt(s['wall_s']['median'], ' s', 2)} / {_fmt(s['wall_s']['p95'], ' s', 2)}"),
            ("agent seconds per resolved", _fmt(s["agent_s_per_resolved"], " s", 2)),
            ("resolved@1 (first answer) / with search", f"{s['resolved_at_1']} / {s['resolved']}"),
            ("median agent seconds of a resolved instance", _fmt(s["resolved_wall_s_median"], " s", 2)),
            ("candidates drawn (instances searched, won by search)",
             f"{s['candidates']['total']} ({s['candidates']['searched']}, {s['candidates']['won_by_search']})"),
            ("model calls per instance", _fmt(s["model_calls"]["per_instance"])),
            ("steps per instance", _fmt(s["steps_per_instance"])),
            ("median TTFT", _fmt(s["ttft_ms_median"], " ms", 0)),
            ("prompt tokens (cached share)", f"{s['tokens']['prompt']} ({'-' if cached is None else f'{cached:.0%}'})"),
            ("time: model · tools · other", share),
        ]  # fmt: skip
    rows.append(("instance total (copy, setup, agent, tests), median / p95",
                 f"{_fmt(s['instance_s']['median'], ' s', 2)} / {_fmt(s['instance_s']['p95'], ' s', 2)}"))  # fmt: skip
    return rows


def headline(summary: dict[str, Any]) -> str:
    s = summary
    workers = f"{s['workers']} worker" + ("s" if s["workers"] != 1 else "")
    if s.get("ray"):
        workers += f" on Ray ({s['ray']})"
    return f"{s['mode']} · model `{s['model']}` · {workers} · {s['run_wall_s']:.1f} s in all" + (
        " · interrupted (continue with --resume)" if s.get("interrupted") else ""
    )


def markdown(summary: dict[str, Any], results: list[InstanceResult]) -> str:
    s = summary
    agent = s["mode"] != "gold"
    rows = metrics(s)
    rows[0] = (rows[0][0], f"**{rows[0][1]}**")
    lines = [f"# Eval: {s['suite']}", "", headline(s), "", "| metric | value |", "|---|---|"]
    lines += [f"| {metric} | {value} |" for metric, value in rows] + [""]
    if not agent:
        lines += ["| instance | status | total s | tests F2P / P2P |", "|---|---|---:|---|"]
        lines += [f"| {r.instance_id} | {_status(r)} | {r.total_s:.2f} | {_tests(r)} |" for r in results]
        return "\n".join(lines) + "\n"
    lines += [
        "| instance | status | wall s | calls | steps | candidates (won) | prompt | cached | TTFT ms | tool s | exit | "
        "tests F2P / P2P |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.instance_id} | {_status(r)} | {_fmt(r.wall_s, digits=2)} | {r.model_calls} | {r.steps} | "
            f"{r.candidates} ({_fmt(r.winner)}) | "
            f"{r.prompt_tokens} | {r.cached_tokens} | {_fmt(r.ttft_ms_median, digits=0)} | {r.tool_s:.2f} | "
            f"{_fmt(r.exit_code)} | {_tests(r)} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict[str, Any], results: list[InstanceResult]) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(markdown(summary, results), encoding="utf-8")
