"""The gathered context's token budget, sized to the endpoint: prefetch is worth what it costs in prefill.

The endpoint's prefill rate is measured — the warm-up's uncached tokens over its time, then every call's uncached
prompt tokens over its TTFT — and remembered per endpoint on disk for the next run (a warm server's warm-up is
all cached and measures nothing). The budget is `context.first_call_s` seconds of prefill at that rate: tens of
thousands of tokens on a fast hosted endpoint, a few hundred on a CPU — but the failure and the code it names may
always take `context.min_tokens`, without which a small model spends calls looking for them. Sections fill it in
order of value (the failing assertion and traceback, the code the failure names, then the rest); the trace
records the budget, the rate and what was left out. The same rate caps the size of tool results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastcode.core.endpoint_memory import recall, remember
from fastcode.core.events import ContextBudgeted

if TYPE_CHECKING:
    from fastcode.context.gather import Section
    from fastcode.core.config import ContextSection
    from fastcode.core.emitter import Emitter

CHARS_PER_TOKEN = 3.5
"""Code tokenizes at about 3-4 characters per token; the lower figure keeps the estimate on the safe side."""
DEFAULT_RATE = 2000.0
"""Prefill tokens/s assumed before anything was measured (a hosted endpoint without a warm-up)."""
LAUNCHED_RATE = 150.0
"""Prefill tokens/s assumed for a llama-server fastcode started itself, before anything was measured: its warm-up is
all cached when the saved prompt cache was restored, and taking a CPU for a 2,000 tokens/s endpoint costs its
first call 10 s of needless prefill on this 2-core machine, while the opposite costs a GPU build one lean context."""
MIN_SAMPLE_TOKENS = 64
"""Fewer uncached tokens than this measure latency, not prefill."""
MIN_TOOL_OUTPUT_CHARS = 2000
RATES = "prefill-rates"
"""The endpoint memory (`~/.cache/fastcode/prefill-rates.json`) the measured rates are kept in."""


def tokens_of(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


class ContextBudget:
    """Measures one endpoint's prefill rate and sizes the context and tool results from it."""

    def __init__(self, settings: ContextSection, endpoint: str = "", *, assumed: float = DEFAULT_RATE) -> None:
        self.settings, self.endpoint, self.assumed = settings, endpoint, assumed
        self.rate: float | None = None
        self.source = "assumed"

    def _remembered(self) -> float | None:
        value = recall(RATES, self.endpoint)
        return float(value) if isinstance(value, int | float) and value > 0 else None

    def _remember(self) -> None:
        if self.rate is not None:
            remember(RATES, self.endpoint, round(self.rate, 1))

    def sample(self, uncached_tokens: int, seconds: float, source: str) -> None:
        """One measurement: `uncached_tokens` prefilled in `seconds`."""
        if uncached_tokens >= MIN_SAMPLE_TOKENS and seconds > 0:
            self.rate, self.source = uncached_tokens / seconds, source
            self._remember()

    def observe_warmups(self, warmups: Sequence[Any]) -> None:
        for result in warmups:
            if getattr(result, "ok", False):
                self.sample(result.prompt_tokens - result.cached_tokens, result.ms / 1000, "warm-up")

    def timed_out(self, chars: int, seconds: float) -> None:
        """A warm-up of `chars` characters got no answer within `seconds`: the prefill rate is at most that. Not
        remembered, but for this run a slow CPU is not taken for a fast endpoint (its first call gets the time its
        prefill needs; a hung endpoint pays the same allowance)."""
        bound = chars / CHARS_PER_TOKEN / max(seconds, 0.001)
        if bound < self.prefill_rate()[0]:
            self.rate, self.source = bound, "warm-up timed out"

    def observe(self, result: Any) -> None:
        """A model call's result: its uncached prompt tokens over its TTFT."""
        if result.ttft_ms:
            self.sample(result.prompt_tokens - result.cached_tokens, result.ttft_ms / 1000, "model call")

    def prefill_rate(self) -> tuple[float, str]:
        if self.rate is not None:
            return self.rate, self.source
        if (remembered := self._remembered()) is not None:
            return remembered, "previous run"
        return self.assumed, "assumed"

    def prefill_seconds(self, chars: int) -> float:
        """How long a prompt of `chars` characters takes to prefill at the measured rate, none of it cached."""
        return chars / CHARS_PER_TOKEN / max(self.prefill_rate()[0], 1.0)

    def tokens(self) -> int:
        return int(self.prefill_rate()[0] * self.settings.first_call_s)

    def tool_output_chars(self, configured: int) -> int:
        """The cap on one tool result: the configured one, lowered on slow endpoints to about one budget."""
        return max(MIN_TOOL_OUTPUT_CHARS, min(configured, int(self.tokens() * CHARS_PER_TOKEN)))

    def fit(self, sections: list[Section], warmups: Sequence[Any], emit: Emitter) -> str:
        """The context block: sections in order of value while they fit; the first one cut to fit if need be."""
        self.observe_warmups(warmups)
        rate, source = self.prefill_rate()
        budget = int(rate * self.settings.first_call_s)
        floor = self.settings.min_tokens
        used, kept, left_out = 0, [], []
        for section in sorted(sections, key=lambda s: s.priority):
            limit = max(budget, floor) if section.priority <= 1 else budget
            text = section.render()
            cost = tokens_of(text)
            if used + cost <= limit:
                kept.append(text)
                used += cost
            elif section.priority <= 1 and (room := int((limit - used) * CHARS_PER_TOKEN)) >= 200:
                body = _cut(section.body, room, keep_tail=section.keep_tail)
                kept.append(f"## {section.title} (cut to fit)\n{body.rstrip()}")
                used += tokens_of(kept[-1])
                left_out.append(f"{section.title} (cut)")
            else:
                left_out.append(section.title)
        emit(ContextBudgeted, budget_tokens=budget, prefill_tps=round(rate, 1), rate_source=source,
             used_tokens=used, left_out=left_out)  # fmt: skip
        return "\n\n".join(kept)


def _cut(body: str, room: int, *, keep_tail: bool) -> str:
    """`body` cut to about `room` characters, keeping a fenced block fenced."""
    fenced = body.startswith("```") and body.rstrip().endswith("```")
    inner = body.strip()[3:-3].strip("\n") if fenced else body
    inner = inner[-room:] if keep_tail else inner[:room]
    return f"```\n{inner}\n```" if fenced else inner
