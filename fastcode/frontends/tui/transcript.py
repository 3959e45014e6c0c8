"""The transcript: each engine event becomes (or updates) a widget, streaming as tokens arrive.

Per run: the task, a one-line header per model call (route, model, TTFT, decode rate), the assistant's text as
streaming Markdown, the plan as a ticking checklist, one collapsible block per tool call, test runs, and at the end
the summary and the run's diff with syntax highlighting.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static

from fastcode.core.events import (
    ApprovalRequested,
    AttemptRejected,
    CandidateTested,
    ErrorEvent,
    Escalated,
    Event,
    FirstToken,
    ModelCallFinished,
    ModelCallStarted,
    PhaseFinished,
    PhaseStarted,
    PlanProposed,
    RunFinished,
    RunStarted,
    SearchFinished,
    SearchStarted,
    StepFinished,
    TestsRun,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from fastcode.frontends.tui.blocks import PlanChecklist, ToolBlock, bounded, diff_view

WELCOME = Text.assemble(
    ("fastcode", "bold"),
    " · type a task below and press Enter (Ctrl+J for a new line).\n",
    "Ctrl+T shows the latency trace · Ctrl+C interrupts a run · Ctrl+Q quits.",
)
STATUS_STYLE = {"finished": "bold green", "interrupted": "bold yellow", "error": "bold red"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class CallHeader(Static):
    """One dim line per model call; its figures fill in as the call progresses."""

    def __init__(self, event: ModelCallStarted) -> None:
        super().__init__(classes="call-header")
        self.warmup, self.done = event.warmup, False
        self.base = f"warm-up · {event.model}" if event.warmup else f"step {event.step} {event.route} · {event.model}"
        self.mark = " · prefix break" if event.prefix_break else ""
        self.update(Text(f"◌ {self.base} · waiting for the first token{self.mark}"))

    def first_token(self, ttft_ms: float) -> None:
        self.update(Text(f"● {self.base} · ttft {ttft_ms:.0f} ms · decoding{self.mark}"))

    def cut_short(self, status: str) -> None:
        if not self.done:
            self.update(Text(f"✗ {self.base} · {status}{self.mark}"))

    def finished(self, event: ModelCallFinished) -> None:
        self.done = True
        if self.warmup:
            self.update(Text(f"  {self.base} · {event.total_ms:.0f} ms · prompt {event.prompt_tokens}"))
            return
        tps = f" · {event.decode_tps:.0f} tok/s" if event.decode_tps else ""
        share = event.cached_tokens / event.prompt_tokens if event.prompt_tokens else 0.0
        self.update(
            Text(
                f"  {self.base} · ttft {_ms(event.ttft_ms)} ms{tps} · {event.total_ms:.0f} ms · "
                f"prompt {event.prompt_tokens} ({share:.0%} cached){self.mark}"
            )
        )


class Reasoning(Static):
    """The model's reasoning stream, dim, keeping only its tail."""

    def __init__(self) -> None:
        super().__init__(classes="reasoning")
        self.tail = ""

    def extend(self, text: str) -> None:
        self.tail = (self.tail + text)[-600:]
        self.update(Text(self.tail))


class Transcript(VerticalScroll):
    """Applies engine events in order; holds the widgets of the calls and tools still open."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.headers: dict[str, CallHeader] = {}
        self.texts: dict[tuple[str, str], Widget] = {}
        self.tools: dict[str, ToolBlock] = {}
        self.phases: dict[str, Static] = {}
        self.plan: PlanChecklist | None = None
        self.last_call: str = ""

    def on_mount(self) -> None:
        self.anchor()

    async def welcome(self) -> None:
        await self.add(Static(WELCOME, classes="welcome"))

    async def add(self, *widgets: Widget) -> None:
        await self.mount_all(widgets)

    def text_of(self, call_id: str) -> str:
        """The assistant text shown so far for a model call (tests read it)."""
        widget = self.texts.get((call_id, "content"))
        return widget.source if isinstance(widget, Markdown) else ""

    async def apply(self, event: Event) -> None:
        match event:
            case RunStarted():
                self.headers, self.texts, self.tools, self.plan = {}, {}, {}, None
                turn = f"(turn {event.turn}) " if event.turn > 1 else ""
                await self.add(Static(Text(f"❯ {turn}{event.task}"), classes="user-task"))
            case PhaseStarted() if "." not in event.name:
                self.phases[event.name] = Static(Text(f"… {event.name}"), classes="phase")
                await self.add(self.phases[event.name])
            case PhaseFinished() if (line := self.phases.pop(event.name, None)) is not None:
                mark = "✓" if event.ok else "✗"
                line.update(Text(f"{mark} {event.name} · {event.ms:.0f} ms {event.detail}".rstrip()))
            case ModelCallStarted():
                self.last_call = event.call_id
                self.headers[event.call_id] = CallHeader(event)
                await self.add(self.headers[event.call_id])
            case FirstToken() if (header := self.headers.get(event.call_id)) is not None:
                header.first_token(event.ttft_ms)
            case TextDelta():
                await self._text(event.call_id, event.kind, event.text)
            case ModelCallFinished():
                if (header := self.headers.get(event.call_id)) is not None:
                    header.finished(event)
                if event.content and (event.call_id, "content") not in self.texts:
                    await self._text(event.call_id, "content", event.content)
            case PlanProposed():
                await self._plan(event.items)
            case ToolStarted():
                self.tools[event.tool_id] = ToolBlock(event)
                await self.add(self.tools[event.tool_id])
            case ApprovalRequested() if (block := self.tools.get(event.tool_id)) is not None:
                block.awaiting_approval()
            case ToolFinished() if (block := self.tools.get(event.tool_id)) is not None:
                block.finish(event)
            case TestsRun():
                mark, verdict = ("✓", "passed") if event.passed else ("✗", "failed")
                title = f"{mark} tests {verdict} · {event.command} · {event.ms:.0f} ms"
                block = Collapsible(Static(Text(bounded(event.output_tail))), title=title, classes="tool tests")
                block.set_class(not event.passed, "-error")
                await self.add(block)
            case StepFinished() if self.plan is not None:
                self.plan.tick(event.step)
            case AttemptRejected():
                line = f"↺ attempt rejected ({event.reason}): its edits were put back; sampling again"
                await self.add(Static(Text(line), classes="warning"))
            case SearchStarted():
                line = f"⋯ search: up to {event.samples} candidates, each tried in a scratch copy"
                await self.add(Static(Text(line), classes="warning"))
            case CandidateTested():
                mark = {"passed": "✓", "failed": "✗", "duplicate": "="}.get(event.result, "·")
                await self.add(Static(Text(f"  {mark} {event.line()}"), classes="candidate"))
            case SearchFinished():
                won = f"candidate {event.winner} won" if event.winner else "no candidate passed"
                await self.add(Static(Text(f"⋯ search: {won} of {event.drawn} ({event.draw})"), classes="warning"))
            case Escalated():
                await self.add(Static(Text(f"⇡ escalating to {event.route}: {event.reason}"), classes="warning"))
            case ErrorEvent():
                await self.add(Static(Text(f"error ({event.kind}): {event.message}"), classes="error"))
            case RunFinished():
                await self._finished(event)

    async def _text(self, call_id: str, kind: str, text: str) -> None:
        widget = self.texts.get((call_id, kind))
        if widget is None:
            widget = Markdown("", classes="assistant") if kind == "content" else Reasoning()
            self.texts[(call_id, kind)] = widget
            await self.add(widget)
        if isinstance(widget, Markdown):
            await widget.append(text)
        elif isinstance(widget, Reasoning):
            widget.extend(text)

    async def _plan(self, items: list[str]) -> None:
        self.plan = PlanChecklist(items)
        markdown = self.texts.get((self.last_call, "content"))
        if isinstance(markdown, Markdown) and _only_plan(markdown.source, items):
            await self.mount(self.plan, before=markdown)
            await markdown.remove()  # the checklist says the same, and ticks
            del self.texts[(self.last_call, "content")]
        else:
            await self.add(self.plan)

    async def _finished(self, event: RunFinished) -> None:
        if self.plan is not None:
            self.plan.close(event.status == "finished")
        for header in self.headers.values():
            header.cut_short(event.status)
        for block in self.tools.values():
            if block.status in ("running", "approval"):
                block.status = "declined" if block.status == "approval" else "error"
                block.retitle()
        style = STATUS_STYLE.get(event.status, "bold yellow")
        line = f"■ {event.status} · {event.steps} steps · {event.model_calls} model calls · {event.wall_s:.2f} s"
        widgets: list[Widget] = [Static(Text(line, style=style), classes="run-end")]
        if event.summary:
            widgets.append(Markdown(event.summary, classes="summary"))
        if event.diff:
            widgets.append(Static(diff_view(event.diff), classes="diff"))
        await self.add(*widgets)


def _only_plan(text: str, items: list[str]) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return len(lines) == len(items) and all(line.endswith(item) for line, item in zip(lines, items, strict=True))
