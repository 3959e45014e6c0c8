"""Events -> per-call rows and totals: what `fastcode trace show`, the TUI's latency panel and evals all display.

`TraceBuilder` is fed events one at a time (live in the TUI, from trace.jsonl afterwards) and keeps one row per model
call, tool call, phase, test run and tested search candidate on a shared time axis, plus totals: wall, model time,
tool time (the union of tool, test and candidate spans, so parallel calls count once), everything else, and the
cached share of prompt tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastcode.core.events import (
    AnyEvent,
    CandidateTested,
    Event,
    FirstToken,
    ModelCallFinished,
    ModelCallStarted,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    SearchFinished,
    TestsRun,
    ToolFinished,
    ToolStarted,
    parse_event,
)

TOOL_KINDS = ("tool", "tests", "candidate")
"""Row kinds that are fastcode's own work between model calls (the totals' tool time)."""


@dataclass
class Row:
    """One span on the waterfall: a model call, a tool call, a phase, a test run or a search candidate's tests. Times
    are seconds from the run start."""

    kind: str  # "model", "tool", "phase", "tests", "candidate"
    id: str
    step: int
    label: str
    start: float
    end: float | None = None
    first_token: float | None = None
    route: str = ""
    model: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    decode_tps: float | None = None
    prefix_break: bool = False
    warmup: bool = False
    ok: bool = True
    server_prefill_ms: float | None = None
    request_ms: float | None = None
    """A model call's request alone, from sending it to the last token (the span adds fastcode's own work)."""
    provider: str = ""
    """Who serves a model call (`gen_ai.provider.name`: "openai", "llama.cpp", a host, …); "" when not recorded."""
    candidate: CandidateTested | None = None
    """A search candidate's draw and verdict (index, seed, result, diff)."""
    winner: bool = False
    """The search candidate the tests chose."""

    @property
    def ms(self) -> float | None:
        return None if self.end is None else round((self.end - self.start) * 1000, 2)

    @property
    def parent_id(self) -> str:
        """The phase a phase belongs to (`gather` for `gather.git`) as a row id; "" for none."""
        if self.kind != "phase" or "." not in self.label:
            return ""
        return "phase:" + self.label.rpartition(".")[0]

    @property
    def wait_ms(self) -> float | None:
        """Of the TTFT, what the server did not spend on the prompt (queue, network, setup), where it says."""
        if self.ttft_ms is None or self.server_prefill_ms is None:
            return None
        return round(max(self.ttft_ms - self.server_prefill_ms, 0.0), 2)


@dataclass
class Totals:
    wall_s: float = 0.0
    model_s: float = 0.0
    tool_s: float = 0.0
    other_s: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    model_calls: int = 0
    prefix_breaks: int = 0

    @property
    def cached_share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def union_seconds(spans: list[tuple[float, float]]) -> float:
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(spans):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start  # type: ignore[operator]
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start  # type: ignore[operator]
    return total


@dataclass
class TraceBuilder:
    origin: float | None = None
    rows: list[Row] = field(default_factory=list)
    by_id: dict[str, Row] = field(default_factory=dict)
    started: RunStarted | None = None
    finished: RunFinished | None = None
    last_t: float = 0.0

    def add(self, event: Event) -> Row | None:
        """Fold one event in; return the row it created or updated, if any."""
        if self.origin is None:
            self.origin = event.t
        t = event.t - self.origin
        self.last_t = max(self.last_t, t)
        match event:
            case RunStarted():
                self.started = event
            case RunFinished():
                self.finished = event
            case ModelCallStarted():
                label = f"{event.route} · {event.model}" + (" (warm-up)" if event.warmup else "")
                return self._open(
                    Row(
                        "model",
                        event.call_id,
                        event.step,
                        label,
                        t,
                        route=event.route,
                        model=event.model,
                        prefix_break=event.prefix_break,
                        warmup=event.warmup,
                        provider=event.provider,
                    )
                )
            case FirstToken() if row := self.by_id.get(event.call_id):
                row.first_token, row.ttft_ms = t, event.ttft_ms
                return row
            case ModelCallFinished() if row := self.by_id.get(event.call_id):
                row.end, row.prompt_tokens, row.cached_tokens = t, event.prompt_tokens, event.cached_tokens
                row.completion_tokens, row.decode_tps = event.completion_tokens, event.decode_tps
                row.ttft_ms = event.ttft_ms if event.ttft_ms is not None else row.ttft_ms
                row.request_ms = (event.total_ms - event.setup_ms) or None
                row.server_prefill_ms = event.server_prefill_ms
                return row
            case ToolStarted():
                return self._open(Row("tool", event.tool_id, event.step, event.name, t))
            case ToolFinished() if row := self.by_id.get(event.tool_id):
                row.end, row.ok = t, event.ok
                return row
            case PhaseStarted():
                return self._open(Row("phase", "phase:" + event.name, 0, event.name, t))
            case PhaseFinished() if row := self.by_id.get("phase:" + event.name):
                row.end, row.ok = t, event.ok
                return row
            case TestsRun():
                return self._open(
                    Row(
                        "tests",
                        f"tests:{event.seq}",
                        event.step,
                        event.command + (" (warm)" if event.runner == "warm" else ""),
                        t - event.ms / 1000,
                        end=t,
                        ok=event.passed,
                    )
                )
            case CandidateTested() if event.tests_ms > 0:
                label = f"candidate #{event.index}" + (f" {event.diff}" if event.diff else "")
                return self._open(Row("candidate", f"candidate:{event.seq}", event.step, label,
                                      t - event.tests_ms / 1000, end=t, ok=event.result == "passed",
                                      candidate=event))  # fmt: skip
            case SearchFinished() if row := self._candidate(event.winner):
                row.winner = True
                return row
        return None

    def _candidate(self, index: int | None) -> Row | None:
        """The latest search's tested candidate of that index."""
        found = (r for r in reversed(self.rows) if r.candidate is not None and r.candidate.index == index)
        return None if index is None else next(found, None)

    def _open(self, row: Row) -> Row:
        self.rows.append(row)
        self.by_id[row.id] = row
        return row

    def totals(self) -> Totals:
        calls = [r for r in self.rows if r.kind == "model" and r.end is not None]
        tools = [(r.start, r.end) for r in self.rows if r.kind in TOOL_KINDS and r.end is not None]
        wall = self.last_t
        model_s = union_seconds([(r.start, r.end) for r in calls if not r.warmup])  # type: ignore[misc]
        tool_s = union_seconds(tools)  # type: ignore[arg-type]
        real = [r for r in calls if not r.warmup]
        return Totals(
            wall_s=round(wall, 3),
            model_s=round(model_s, 3),
            tool_s=round(tool_s, 3),
            other_s=round(max(0.0, wall - model_s - tool_s), 3),
            prompt_tokens=sum(r.prompt_tokens for r in real),
            cached_tokens=sum(r.cached_tokens for r in real),
            model_calls=len(real),
            prefix_breaks=sum(r.prefix_break for r in real),
        )


def read_trace(path: Path) -> list[AnyEvent]:
    with path.open(encoding="utf-8") as handle:
        return [parse_event(line) for line in handle if line.strip()]


def build(events: list[AnyEvent]) -> TraceBuilder:
    builder = TraceBuilder()
    for event in events:
        builder.add(event)
    return builder


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(builder: TraceBuilder, width: int = 160) -> str:
    """The per-step table of `fastcode trace show` (a rich table: columns fit their widest figure, nothing is cut):
    model calls with their tools, phases, test runs and search candidates (the winner marked), then totals. `wait` and
    `prefill` split the TTFT where the server reports its own prompt time (llama.cpp, vLLM with per-request
    metrics)."""
    from rich.table import Table

    from fastcode.core.tables import to_text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("step", "route", "model"):
        table.add_column(name, no_wrap=True)
    for name in ("prompt", "cached", "wait ms", "prefill ms", "ttft ms", "tok/s", "call ms"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("tools", overflow="fold")
    tools_by_step: dict[int, list[Row]] = {}
    for row in builder.rows:
        if row.kind == "tool":
            tools_by_step.setdefault(row.step, []).append(row)
    for row in builder.rows:
        if row.kind == "phase":
            table.add_row("", "phase", row.label, *[""] * 6, _fmt(row.ms), "")
        elif row.kind in ("tests", "candidate"):
            table.add_row(str(row.step or ""), *_verdict(row), *[""] * 6, _fmt(row.ms), "")
        elif row.kind == "model":
            mark = " !prefix-break" if row.prefix_break else ""
            tools = "" if row.warmup else ", ".join(map(_tool_label, tools_by_step.get(row.step, [])))
            table.add_row("w" if row.warmup else str(row.step), row.route, row.model, str(row.prompt_tokens),
                          str(row.cached_tokens), _fmt(row.wait_ms), _fmt(row.server_prefill_ms), _fmt(row.ttft_ms),
                          _fmt(row.decode_tps, 1), _fmt(row.ms), tools + mark)  # fmt: skip
    lines = to_text(table, width)
    t = builder.totals()
    lines.append("")
    lines.append(
        f"total {t.wall_s:.2f} s: model {t.model_s:.2f} s, tools {t.tool_s:.2f} s, other {t.other_s:.2f} s · "
        f"{t.model_calls} model calls · prompt {t.prompt_tokens} tokens, {t.cached_share:.0%} cached"
        + (f" · {t.prefix_breaks} prefix breaks" if t.prefix_breaks else "")
    )
    if builder.finished is not None:
        lines.append(f"status {builder.finished.status} (exit {builder.finished.exit_code})")
    return "\n".join(lines)


def _verdict(row: Row) -> tuple[str, str]:
    """The route and model columns of a test run ("tests", "passed") or a search candidate ("search",
    "#2 passed ✓ winner")."""
    if row.candidate is None:
        return "tests", "passed" if row.ok else "failed"
    return "search", f"#{row.candidate.index} {row.candidate.result}" + (" ✓ winner" if row.winner else "")


def _tool_label(row: Row) -> str:
    return f"{row.label}{'' if row.ok else ' (error)'} {_fmt(row.ms)}ms"
