"""A run's trace as Chrome / Perfetto trace-event JSON: what ui.perfetto.dev and chrome://tracing open.

One process per run; one track per kind of span (model calls, tools, tests, search candidates, phases), and a
further track wherever spans of a kind overlap (parallel tools, concurrent warm-ups, gathering sources), so no track
holds two spans that partly overlap. Complete events (`ph: "X"`, microseconds from the run start) carry tokens, cache
share and TTFT in their args (a search candidate: its index, seed, result, diff and whether it won); a model call's
first token is an instant event on its track.
"""

from __future__ import annotations

from typing import Any

from fastcode.core.trace import Row, TraceBuilder

TRACK_ORDER = ("model", "tool", "tests", "candidate", "phase")
TRACK_NAMES = {"model": "model calls", "tool": "tools", "tests": "tests", "candidate": "search candidates",
               "phase": "phases"}  # fmt: skip


def _lanes(rows: list[Row], end_of: dict[str, float]) -> list[list[Row]]:
    """Rows split into lanes in which no two spans overlap (the first lane that is free by the row's start)."""
    lanes: list[list[Row]] = []
    for row in sorted(rows, key=lambda r: (r.start, -end_of[r.id])):
        lane = next((lane for lane in lanes if end_of[lane[-1].id] <= row.start), None)
        if lane is None:
            lanes.append(lane := [])
        lane.append(row)
    return lanes


def _args(row: Row) -> dict[str, Any]:
    if row.candidate is not None:
        c = row.candidate
        return {"step": row.step, "ok": row.ok, "index": c.index, "seed": c.seed, "result": c.result, "diff": c.diff,
                "winner": row.winner}  # fmt: skip
    if row.kind != "model":
        return {"step": row.step, "ok": row.ok}
    share = round(row.cached_tokens / row.prompt_tokens, 3) if row.prompt_tokens else 0.0
    return {"step": row.step, "route": row.route, "model": row.model, "prompt_tokens": row.prompt_tokens,
            "cached_tokens": row.cached_tokens, "cached_share": share, "completion_tokens": row.completion_tokens,
            "ttft_ms": row.ttft_ms, "wait_ms": row.wait_ms, "server_prefill_ms": row.server_prefill_ms,
            "decode_tps": row.decode_tps, "warmup": row.warmup, "provider": row.provider}  # fmt: skip


def _us(seconds: float) -> float:
    return round(seconds * 1_000_000, 1)


def to_trace_events(builder: TraceBuilder) -> dict[str, Any]:
    """The trace-event JSON object for one run (`traceEvents`, plus the run's id and task in `otherData`)."""
    run_id = builder.started.run_id if builder.started else ""
    end_of = {r.id: r.end if r.end is not None else builder.last_t for r in builder.rows}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": f"fastcode run {run_id}"}}
    ]
    tid = 0
    for kind in TRACK_ORDER:
        lanes = _lanes([r for r in builder.rows if r.kind == kind], end_of)
        for number, lane in enumerate(lanes, 1):
            tid += 1
            name = TRACK_NAMES[kind] + (f" {number}" if len(lanes) > 1 else "")
            events.append({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": tid, "args": {"sort_index": tid}})
            for row in lane:
                events.append({"ph": "X", "name": row.label, "cat": kind, "pid": 1, "tid": tid, "ts": _us(row.start),
                               "dur": _us(end_of[row.id] - row.start), "args": _args(row)})  # fmt: skip
                if row.first_token is not None:
                    events.append({"ph": "i", "s": "t", "name": "first token", "cat": kind, "pid": 1, "tid": tid,
                                   "ts": _us(row.first_token), "args": {"ttft_ms": row.ttft_ms}})  # fmt: skip
    other = {"run_id": run_id, "task": builder.started.task if builder.started else ""}
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}
