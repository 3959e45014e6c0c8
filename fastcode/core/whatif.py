"""`fastcode trace whatif`: a recorded run's model calls replayed under another backend's latency model.

Everything but the backend keeps its recorded time: tools, tests, gathering, fastcode's own work (including the part
of a model call's span before its request went out). Each request takes what the model says, with the run's
recorded token counts: `ttft_ms/1000 + (uncached prompt tokens + cached ones x cached_factor) / prefill_tps +
completion tokens / decode_tps` (the scripted server's own model). Calls of a run are sequential, so the wall time
moves by the sum of their differences; warm-ups overlap context gathering, so they move it only by what they add
beyond it. Deterministic: the same trace and model give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastcode.core.trace import Row, TraceBuilder


@dataclass(frozen=True)
class LatencyModel:
    ttft_ms: float
    decode_tps: float
    prefill_tps: float
    cached_factor: float = 0.0
    """Cost of a cached prompt token relative to an uncached one."""

    def call_s(self, prompt: int, cached: int, completion: int) -> float:
        prefill = (prompt - cached + cached * self.cached_factor) / self.prefill_tps
        return self.ttft_ms / 1000 + prefill + completion / self.decode_tps


PROFILES = {
    "fast": LatencyModel(ttft_ms=150, decode_tps=200, prefill_tps=5000),
    "cpu": LatencyModel(ttft_ms=150, decode_tps=30, prefill_tps=150),
}
"""Named models: the scripted fast backend of the benchmarks, and the embedded 1.5B model on a 2-core CPU."""


@dataclass(frozen=True)
class StepWhatIf:
    step: int
    recorded_s: float
    predicted_s: float


@dataclass(frozen=True)
class WhatIf:
    recorded_wall_s: float
    predicted_wall_s: float
    steps: list[StepWhatIf]
    """Model time per step (the calls of step 0 are the warm-ups' share beyond gathering)."""


def replay(builder: TraceBuilder, model: LatencyModel) -> WhatIf:
    recorded: dict[int, float] = {}
    predicted: dict[int, float] = {}
    calls: list[Row] = [r for r in builder.rows if r.kind == "model" and r.end is not None]
    for row in (r for r in calls if not r.warmup):
        span = (row.end or row.start) - row.start
        own = max(span - row.request_ms / 1000, 0.0) if row.request_ms else 0.0  # fastcode's part of the span
        recorded[row.step] = recorded.get(row.step, 0.0) + span
        predicted[row.step] = (
            predicted.get(row.step, 0.0)
            + own
            + model.call_s(row.prompt_tokens, row.cached_tokens, row.completion_tokens)
        )
    warmups = [r for r in calls if r.warmup]
    if warmups:
        gather = next((r for r in builder.rows if r.kind == "phase" and r.label == "gather" and r.end), None)
        gathered = (gather.end - gather.start) if gather and gather.end else 0.0
        was = max((r.end or r.start) - r.start for r in warmups)
        will = max(model.call_s(r.prompt_tokens, r.cached_tokens, r.completion_tokens) for r in warmups)
        recorded[0], predicted[0] = max(was - gathered, 0.0), max(will - gathered, 0.0)
    wall = builder.finished.wall_s if builder.finished else builder.last_t
    shift = sum(predicted.values()) - sum(recorded.values())
    steps = [StepWhatIf(s, round(recorded[s], 3), round(predicted[s], 3)) for s in sorted(recorded)]
    return WhatIf(round(wall, 3), round(max(wall + shift, 0.0), 3), steps)


def format_whatif(result: WhatIf, model: LatencyModel) -> str:
    from fastcode.core.tables import render

    rows = [("warmup" if s.step == 0 else str(s.step), f"{s.recorded_s:.2f} s", f"{s.predicted_s:.2f} s")
            for s in result.steps]  # fmt: skip
    rows.append(("wall", f"{result.recorded_wall_s:.2f} s", f"{result.predicted_wall_s:.2f} s"))
    heading = (f"latency model: TTFT {model.ttft_ms:g} ms, prefill {model.prefill_tps:g} tok/s, "
               f"decode {model.decode_tps:g} tok/s, cached tokens x{model.cached_factor:g}")  # fmt: skip
    return heading + "\n" + render(("step", "model time recorded", "would take"), rows, right=(0, 1, 2))
