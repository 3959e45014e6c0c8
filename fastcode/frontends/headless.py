"""The headless front end: events -> human lines on stderr (summary and diff on stdout), or JSONL on stdout.

Exit codes: 0 the agent finished; 1 it stopped without finishing (step or time limit); 2 usage or config error;
3 model endpoint error; 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any, TextIO

from fastcode.agent.engine import Session
from fastcode.core.errors import READER_GONE, silence_output
from fastcode.core.events import (
    AttemptRejected,
    CandidateTested,
    ContextBudgeted,
    ErrorEvent,
    Escalated,
    Event,
    ModelCallFinished,
    PhaseFinished,
    PlanProposed,
    Retrying,
    RunFinished,
    RunStarted,
    SearchFinished,
    SearchStarted,
    StepFinished,
    TestsRun,
    ToolFinished,
)
from fastcode.core.paths import run_dir
from fastcode.frontends.otlp import live_exporter, wants_otlp
from fastcode.frontends.result import ResultBuilder


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class HumanPrinter:
    """One line per step: route/model, prompt and cached tokens, TTFT, decode rate, tools and their times."""

    def __init__(self, err: TextIO, out: TextIO) -> None:
        self.err, self.out = err, out
        self.calls: list[ModelCallFinished] = []
        self.tools: list[ToolFinished] = []

    def __call__(self, event: Event) -> None:
        match event:
            case RunStarted():
                self._line(f"fastcode run {event.run_id} · {event.routes.get('act', '')}")
            case PhaseFinished() if event.name.startswith("gather"):
                self._line(f"  {event.name}: {event.ms:.0f} ms {event.detail}".rstrip())
            case PlanProposed():
                self._line("plan:\n" + "\n".join(f"  {i}. {item}" for i, item in enumerate(event.items, 1)))
            case ModelCallFinished() if event.warmup:
                self._line(
                    f"  warm-up {event.model}: {event.total_ms:.0f} ms, {event.prompt_tokens} prompt tokens "
                    f"({event.cached_tokens} already cached){' ' + event.content if event.content else ''}"
                )
            case ModelCallFinished():
                self.calls.append(event)
            case ToolFinished():
                self.tools.append(event)
            case TestsRun():
                self._line(f"  tests: {event.command} -> {'passed' if event.passed else 'failed'} ({event.ms:.0f} ms"
                           f"{', warm' if event.runner == 'warm' else ''})")  # fmt: skip
            case ContextBudgeted():
                left = f"; left out: {', '.join(event.left_out)}" if event.left_out else ""
                self._line(f"  context: {event.used_tokens}/{event.budget_tokens} tokens at {event.prefill_tps:.0f} "
                           f"prefill tok/s ({event.rate_source}){left}")  # fmt: skip
            case AttemptRejected():
                taken = f"; put back {', '.join(event.files)}" if event.files else ""
                self._line(f"  attempt rejected: {event.reason}{taken}; sampling again from the same prompt")
            case SearchStarted():
                self._line(f"  search: up to {event.samples} candidates from the same prompt, tried in a scratch copy "
                           f"({event.copy_ms:.0f} ms to copy)")  # fmt: skip
            case CandidateTested():
                self._line(f"  {event.line()}")
            case SearchFinished():
                won = f"candidate {event.winner} won" if event.winner else "no candidate passed"
                self._line(f"  search: {won} · {event.drawn} drawn, {event.distinct} distinct · {event.draw} "
                           f"({event.draw_reason}) · {event.ms / 1000:.1f} s")  # fmt: skip
            case Retrying():
                self._line(f"  retry {event.attempt} in {event.wait_s:.1f} s ({event.reason})")
            case Escalated():
                self._line(f"  escalating to route {event.route}: {event.reason}")
            case StepFinished():
                self._step(event)
            case ErrorEvent():
                self._line(f"fastcode: error: {event.message}")
            case RunFinished():
                self._finish(event)

    def _step(self, event: StepFinished) -> None:
        parts = []
        for call in self.calls:
            tps = f"{call.decode_tps:.0f} tok/s" if call.decode_tps else "- tok/s"
            brk = " PREFIX-BREAK" if call.prefix_break else ""
            brk += f" (calls recovered from text: {call.recovered})" if call.recovered else ""
            parts.append(
                f"{call.route}/{call.model} prompt {call.prompt_tokens} (cached {call.cached_tokens}) "
                f"ttft {_ms(call.ttft_ms)} ms {tps}{brk}"
            )
        tools = ", ".join(f"{t.name}{'' if t.ok else '!'} {t.ms:.0f}ms" for t in self.tools)
        self._line(f"step {event.step:>2}  " + " | ".join(parts) + (f"  tools: {tools}" if tools else ""))
        self.calls, self.tools = [], []

    def _finish(self, event: RunFinished) -> None:
        self._line(f"{event.status} in {event.wall_s:.2f} s · {event.steps} steps · {event.model_calls} model calls")
        if event.summary:
            self.out.write(event.summary.rstrip() + "\n")
        if event.diff:
            self.out.write(event.diff if event.diff.endswith("\n") else event.diff + "\n")
        self.out.flush()

    def _line(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


class JsonPrinter:
    """Every event as one JSON line, then the result object."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.results = ResultBuilder()

    def __call__(self, event: Event) -> None:
        self.out.write(event.model_dump_json() + "\n")
        if (result := self.results(event)) is not None:
            self.out.write(json.dumps(result) + "\n")
        self.out.flush()


async def run_headless(session: Session, task: str, *, json_mode: bool) -> int:
    """Drive one run to the end, printing as it goes; Ctrl-C interrupts the run cleanly (exit 130)."""
    printer = JsonPrinter(sys.stdout) if json_mode else HumanPrinter(sys.stderr, sys.stdout)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, session.interrupt)
    loop.add_signal_handler(signal.SIGTERM, session.interrupt)
    spans = SpanStream()
    exit_code, reader_gone = 1, False
    try:
        async for event in session.run(task):
            spans(event)
            if not reader_gone:
                try:
                    printer(event)
                    if isinstance(event, RunFinished) and not json_mode:
                        sys.stderr.write(f"trace: {run_dir(session.root, event.run_id) / 'trace.jsonl'}\n")
                except BrokenPipeError:  # `fastcode exec ... | head`: stop the run as Ctrl-C would, quietly
                    reader_gone = True
                    silence_output()
                    session.interrupt()
            if isinstance(event, RunFinished):
                exit_code = event.exit_code
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        await spans.close()
    return READER_GONE if reader_gone else exit_code


class SpanStream:
    """OpenTelemetry spans sent live when $OTEL_EXPORTER_OTLP_ENDPOINT is set. The SDK loads in a thread (tens of
    milliseconds, off the path to the first request); events that arrive meanwhile wait in a list."""

    def __init__(self) -> None:
        self.pending: list[Event] = []
        self.exporter: Any = None
        self.loading = asyncio.ensure_future(asyncio.to_thread(live_exporter)) if wants_otlp() else None

    def __call__(self, event: Event) -> None:
        if self.loading is None:
            return
        self.pending.append(event)
        if self.exporter is None and self.loading.done():
            self.exporter = self.loading.result()
        if self.exporter is None:
            if self.loading.done():  # not installed: said once, nothing to send
                self.loading, self.pending = None, []
            return
        for waiting in self.pending:
            with contextlib.suppress(Exception):  # telemetry never breaks a run
                self.exporter(waiting)
        self.pending.clear()

    async def close(self) -> None:
        if self.loading is None:
            return
        self.exporter = await self.loading
        if self.exporter is not None:
            for waiting in self.pending:
                with contextlib.suppress(Exception):
                    self.exporter(waiting)
            await asyncio.to_thread(self.exporter.close)
