"""The latency panel: a waterfall of model and tool calls on one time axis, figures per call, totals at the bottom.

Every figure comes from `fastcode.core.trace.TraceBuilder` (the same rows and totals `fastcode trace show` prints),
so the panel and the table always agree. Bars: a model call's wait for its first token is drawn with `░`, its
decode with `█`; tool calls with `▆` (parallel calls overlap on separate rows); phases, tests and a search
candidate's tests with `▒` (the winning candidate marked `✓`). A `!` before a model call marks a prompt-prefix break
(the server's cache could not be reused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from fastcode.core.trace import Row, Totals, TraceBuilder

WAIT, PREFILL, DECODE, TOOL, OTHER = "░", "▓", "█", "▆", "▒"
STYLES = {"wait": "yellow", "prefill": "bold yellow", "decode": "bold green", "tool": "cyan", "phase": "magenta",
          "tests": "blue", "candidate": "blue"}  # fmt: skip
FIGURES_WIDTH = 36
FIGURES_HEADER = f"{'prompt':>7} {'cache':>5} {'ttft':>6} {'tok/s':>6} {'ms':>8}"
"""Wide enough for every figure a run produces (9.9M prompt tokens, 16 min TTFT, 999,999 tok/s, 27 h calls): a
figure is never cut; tok/s loses its decimal from 1,000 on."""


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def model_figures(row: Row) -> str:
    """prompt tokens, cached share, TTFT ms, decode tok/s, call ms: the numbers `trace show` prints for the call."""
    share = f"{row.cached_tokens / row.prompt_tokens:.0%}" if row.prompt_tokens else "-"
    tps = _fmt(row.decode_tps, 1 if (row.decode_tps or 0) < 1000 else 0)
    return f"{row.prompt_tokens:>7} {share:>5} {_fmt(row.ttft_ms):>6} {tps:>6} {_fmt(row.ms):>8}"


def span_figures(row: Row) -> str:
    return f"{_fmt(row.ms):>{FIGURES_WIDTH}}"


def totals_lines(totals: Totals) -> list[str]:
    """The totals, in the units and rounding of `fastcode trace show`."""
    t = totals
    breaks = f" · {t.prefix_breaks} prefix breaks" if t.prefix_breaks else ""
    return [
        f"wall {t.wall_s:.2f} s · model {t.model_s:.2f} s · tools {t.tool_s:.2f} s · other {t.other_s:.2f} s",
        f"{t.model_calls} model calls · prompt {t.prompt_tokens} tokens, {t.cached_share:.0%} cached{breaks}",
    ]


def row_label(row: Row) -> str:
    if row.kind == "model":
        step = "w" if row.warmup else str(row.step)
        return f"{step:>2} {row.route}·{row.model}"
    if row.kind == "candidate":
        return f"  {'✓' if row.winner else ' '} {row.label}"  # the mark first: a long label is cut at the end
    return f"    {row.label}" if row.kind == "tool" else f"   {row.kind if row.kind == 'tests' else row.label}"


def _fit(text: str, width: int) -> str:
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)


def _bar(row: Row, span: float, width: int, now: float) -> Text:
    """The row's bar on a `width`-column axis covering 0..span seconds."""

    def col(t: float) -> int:
        return max(0, min(width, round(t / span * width)))

    end = row.end if row.end is not None else now
    start = col(row.start)
    stop = min(width, max(start + 1, col(end)))
    bar = Text(" " * start)
    if row.kind == "model":
        first = col(row.first_token) if row.first_token is not None else stop
        first = max(start, min(stop, first))
        waited = first  # where the server says how long it spent on the prompt, the end of the wait is prefill
        if row.server_prefill_ms is not None and row.first_token is not None:
            waited = max(start, min(first, col(row.first_token - row.server_prefill_ms / 1000)))
        bar.append(WAIT * (waited - start), STYLES["wait"])
        bar.append(PREFILL * (first - waited), STYLES["prefill"])
        bar.append(DECODE * (stop - first), STYLES["decode"])
    else:
        bar.append((TOOL if row.kind == "tool" else OTHER) * (stop - start), STYLES.get(row.kind, "cyan"))
    bar.append(" " * (width - stop))
    return bar


@dataclass
class Waterfall:
    header: Text
    rows: list[Text]
    totals: list[Text]

    def plain(self) -> str:
        return "\n".join(line.plain for line in [self.header, *self.rows, *self.totals])


def waterfall(builder: TraceBuilder, width: int, now: float | None = None) -> Waterfall:
    """The header, one line per row and the totals, for a panel `width` cells wide; `now` (seconds since the
    run started) stretches the bars of calls still open."""
    now = builder.last_t if now is None else max(now, builder.last_t)
    span = max(now, 1e-3)
    label_w = 22 if width >= 110 else 16
    bar_w = max(6, width - label_w - FIGURES_WIDTH - 2)
    end = f"{span:.2f} s"
    axis = ("0" + end.rjust(bar_w - 1))[-bar_w:]
    header = Text(f"{_fit(' step route·model', label_w)} {axis} {FIGURES_HEADER}", style="bold")
    lines = []
    for row in builder.rows:
        line = Text("!" if row.prefix_break else " ", "bold red")
        line.append(_fit(row_label(row), label_w - 1), "dim" if row.kind in ("phase", "tests", "candidate") else "")
        line.append(" ")
        line.append_text(_bar(row, span, bar_w, now))
        line.append(" ")
        figures = model_figures(row) if row.kind == "model" else span_figures(row)
        line.append(figures, "" if row.ok else "red")
        lines.append(line)
    if not builder.rows:
        lines.append(Text("no calls yet", style="dim italic"))
    totals = [Text(text, style="bold") for text in totals_lines(builder.totals())]
    return Waterfall(header, lines, totals)


class LatencyPanel(Vertical):
    """The waterfall, redrawn from the builder it is given (live) or a recorded one (replay). The header and
    the totals stay in place; the rows scroll between them."""

    def __init__(self, *, now: Callable[[], float | None] = lambda: None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.builder = TraceBuilder()
        self.now = now
        """Seconds since the run started, to draw calls still open (None: up to the last event)."""
        self.border_title = "latency trace"
        self.border_subtitle = (
            f"{WAIT} wait {PREFILL} server prefill {DECODE} decode {TOOL} tool {OTHER} phase/tests ! prefix break"
        )

    def compose(self) -> ComposeResult:
        yield Static(id="latency-header")
        with VerticalScroll(id="latency-rows"):
            yield Static(id="latency-body")
        yield Static(id="latency-totals")

    def render_waterfall(self) -> Waterfall:
        width = self.query_one("#latency-rows", VerticalScroll).scrollable_content_region.width
        return waterfall(self.builder, max(40, width), self.now())

    def redraw(self) -> None:
        if not (self.is_mounted and self.app.has_class("-trace")):
            return
        view = self.render_waterfall()
        rows = self.query_one("#latency-rows", VerticalScroll)
        self.query_one("#latency-header", Static).update(view.header)
        self.query_one("#latency-body", Static).update(Text("\n").join(view.rows))
        if rows.scroll_y >= rows.max_scroll_y - 1:  # follow the newest rows unless scrolled up
            rows.call_after_refresh(rows.scroll_end, animate=False)
        self.query_one("#latency-totals", Static).update(Text("\n").join(view.totals))
        finished = self.builder.finished
        state = f" · {finished.status} (exit {finished.exit_code})" if finished else ""
        self.border_title = f"latency trace{state}"

    def plain(self) -> str:
        """What the panel shows, as plain text (tests compare it with the trace file)."""
        return self.render_waterfall().plain()

    def on_resize(self) -> None:
        self.redraw()
