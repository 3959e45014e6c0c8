"""A run's trace as OpenTelemetry spans with the GenAI semantic-convention names, sent with the official
`opentelemetry-sdk` OTLP/HTTP exporter to $OTEL_EXPORTER_OTLP_ENDPOINT (the `otel` extra).

One root span per run (`invoke_agent fastcode`), a `chat {model}` span per model call
(`gen_ai.operation.name = chat`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.output_tokens`, and the time to the first chunk and per output
chunk under the `gen_ai.client.operation.*` names), an `execute_tool {name}` span per tool call, a
`search candidate #N` span per tested candidate fix, and a span per phase and test run, all at the times they happened
(the run's wall-clock start plus each span's offset). A phase named `gather.git` is a child of the `gather` phase's
span; everything else is a child of the root.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from fastcode.core.trace import Row, TraceBuilder

MISSING = "OTLP export needs the otel extra: pip install 'fastcode[otel]'"


class ExportError(Exception):
    """Nothing was sent: no endpoint or no exporter installed (exit 2), or the receiver failed (exit 3)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _attributes(row: Row) -> dict[str, Any]:
    if row.kind == "model":
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": row.model,
            "gen_ai.usage.input_tokens": row.prompt_tokens,
            "gen_ai.usage.cache_read.input_tokens": row.cached_tokens,
            "gen_ai.usage.output_tokens": row.completion_tokens,
            "fastcode.route": row.route,
            "fastcode.step": row.step,
            "fastcode.warmup": row.warmup,
        }
        if row.provider:
            attributes["gen_ai.provider.name"] = row.provider
        if row.ttft_ms is not None:
            attributes["gen_ai.client.operation.time_to_first_chunk"] = row.ttft_ms / 1000
        if row.decode_tps:
            attributes["gen_ai.client.operation.time_per_output_chunk"] = 1 / row.decode_tps
        return attributes
    if row.kind == "tool":
        return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": row.label,
                "gen_ai.tool.call.id": row.id, "fastcode.step": row.step, "fastcode.ok": row.ok}  # fmt: skip
    attributes = {"fastcode.kind": row.kind, "fastcode.step": row.step, "fastcode.ok": row.ok}
    if row.candidate is not None:
        attributes |= {"fastcode.search.index": row.candidate.index, "fastcode.search.result": row.candidate.result,
                       "fastcode.search.winner": row.winner}  # fmt: skip
    return attributes


def _root_attributes(started: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "fastcode",
        "gen_ai.conversation.id": started.session_id or started.run_id,
        "fastcode.run_id": started.run_id,
    }


def _start(tracer: Any, parent: Any, row: Row, start_ns: int) -> Any:
    """The span of `row`, started under `parent`: a model call is a CLIENT span (GenAI conventions)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if row.kind == "model" else SpanKind.INTERNAL
    context = trace.set_span_in_context(parent)
    return tracer.start_span(_name(row), context=context, kind=kind, start_time=start_ns, attributes=_attributes(row))


def _end(span: Any, row: Row, end_ns: int) -> None:
    """End `row`'s span with what its row knows by now; a failed tool, test run or candidate is an ERROR."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attributes(_attributes(row))
    if not row.ok:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end_ns)


def _name(row: Row) -> str:
    if row.candidate is not None:
        return f"search candidate #{row.candidate.index}"
    return {"model": f"chat {row.model}", "tool": f"execute_tool {row.label}"}.get(row.kind, row.label)


def traces_url() -> str:
    """Where spans go: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else $OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces
    (the OTLP exporter specification); ExportError (exit 2) when neither is set or the URL is not http(s)."""
    from urllib.parse import urlparse

    url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    if not url and (base := os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")):
        url = base.rstrip("/") + "/v1/traces"
    if not url:
        raise ExportError("set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) to send the trace")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ExportError(f"OTLP endpoint {url!r} is not an http(s) URL (e.g. http://localhost:4318)")
    return url


def _quiet() -> None:
    """The SDK logs every retry of an unreachable collector; fastcode says it once instead."""
    import logging

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)


def send(builder: TraceBuilder) -> int:
    """Send the run's spans to `traces_url()`; returns how many."""
    url = traces_url()
    if builder.started is None:
        raise ExportError("the trace has no run_started event")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        raise ExportError(MISSING) from None

    spans = InMemorySpanExporter()  # the spans are made here, then sent in one request
    provider = TracerProvider(resource=Resource.create({"service.name": "fastcode"}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("fastcode")
    origin_ns = int(datetime.fromisoformat(builder.started.started_at).timestamp() * 1e9)

    def ns(seconds: float) -> int:
        return origin_ns + int(seconds * 1e9)

    finished = builder.finished
    attributes = _root_attributes(builder.started) | {"fastcode.status": finished.status if finished else "unfinished"}
    root = tracer.start_span("invoke_agent fastcode", start_time=origin_ns, attributes=attributes)
    made: dict[str, Any] = {}  # a phase's span, for the phases inside it (rows come in the order they started)
    for row in builder.rows:
        made[row.id] = span = _start(tracer, made.get(row.parent_id, root), row, ns(row.start))
        _end(span, row, ns(row.end if row.end is not None else builder.last_t))
    root.end(end_time=ns(builder.last_t))
    provider.shutdown()
    finished_spans = spans.get_finished_spans()
    _quiet()
    if OTLPSpanExporter(endpoint=url, timeout=4).export(finished_spans) != SpanExportResult.SUCCESS:
        raise ExportError(f"the OTLP receiver at {url} did not accept the spans (is it running?)", 3)
    return len(finished_spans)


class LiveExporter:
    """Sends a run's spans while it runs (`OTEL_EXPORTER_OTLP_ENDPOINT` set): each model call, tool and test run as
    soon as it ends, a phase when it ends (its span started when it did, so the phases inside it have their parent), a
    search's candidates when the search finishes (which one won is known then), the run's root span when it finishes;
    a batch processor sends them in the background, so a slow or dead receiver never holds the run up (the SDK logs
    what it could not send)."""

    def __init__(self, url: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        _quiet()
        self.url, self.failed = url, False
        otlp = OTLPSpanExporter(endpoint=url, timeout=2)  # at most ~2 s at the end of a run when nothing answers
        owner = self

        class Remembering(SpanExporter):
            """The OTLP exporter, remembering whether an export failed (the SDK only logs it)."""

            def export(self, spans: Any) -> SpanExportResult:
                result = otlp.export(spans)
                owner.failed |= result != SpanExportResult.SUCCESS
                return result

            def shutdown(self) -> None:
                otlp.shutdown()

        exporter = Remembering()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "fastcode"}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("fastcode")
        self.builder = TraceBuilder()
        self.root: Any = None
        self.origin_ns = 0
        self.sent: set[str] = set()
        self.open: dict[str, Any] = {}
        """Row id -> span not ended yet: phases under way, candidates of a search under way."""

    def _ns(self, seconds: float) -> int:
        return self.origin_ns + int(seconds * 1e9)

    def __call__(self, event: Any) -> None:
        from fastcode.core.events import RunFinished, RunStarted, SearchFinished

        row = self.builder.add(event)
        if isinstance(event, RunStarted):
            self.builder = TraceBuilder()  # a follow-up turn: a new root span, times from its own start
            self.builder.add(event)
            self.sent.clear()
            self.open.clear()
            self.origin_ns = int(datetime.fromisoformat(event.started_at).timestamp() * 1e9)
            self.root = self.tracer.start_span("invoke_agent fastcode", start_time=self.origin_ns,
                                               attributes=_root_attributes(event))  # fmt: skip
        elif isinstance(event, SearchFinished):
            self._close("candidate")
        elif row is not None and row.id not in self.sent and self.root is not None:
            self._span(row)
        elif isinstance(event, RunFinished) and self.root is not None:
            self._close("phase", "candidate")  # what never finished ends with the run
            self.root.set_attribute("fastcode.status", event.status)
            self.root.end(end_time=self._ns(self.builder.last_t))
            self.root = None

    def _span(self, row: Row) -> None:
        """Start a phase's span when it starts; end a row's span when it ends (a candidate's when its search does)."""
        if row.end is None:
            if row.kind == "phase":
                self.open[row.id] = _start(self.tracer, self._parent(row), row, self._ns(row.start))
            return
        self.sent.add(row.id)
        span = self.open.pop(row.id, None) or _start(self.tracer, self._parent(row), row, self._ns(row.start))
        if row.kind == "candidate":
            self.open[row.id] = span
        else:
            _end(span, row, self._ns(row.end))

    def _close(self, *kinds: str) -> None:
        """End the open spans of rows of these kinds, each at its row's end (else at the run's last event)."""
        for row_id in [i for i in self.open if self.builder.by_id[i].kind in kinds]:
            row = self.builder.by_id[row_id]
            _end(self.open.pop(row_id), row, self._ns(row.end if row.end is not None else self.builder.last_t))

    def _parent(self, row: Row) -> Any:
        """The span of the phase `row` is part of while it is under way, else the run's root."""
        return self.open.get(row.parent_id, self.root)

    def close(self) -> None:
        """Send what is left (about 2 s at most when the receiver is gone), and say once if anything was lost."""
        self.provider.shutdown()
        if self.failed:
            import sys

            sys.stderr.write(f"fastcode: could not send the run's spans to {self.url} (is the collector running?)\n")


def wants_otlp() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def live_exporter() -> LiveExporter | None:
    """A live exporter when $OTEL_EXPORTER_OTLP_ENDPOINT is set and the otel extra is installed, else None (with a
    one-line warning when the endpoint is set but the extra is missing)."""
    try:
        url = traces_url()
    except ExportError as exc:
        import sys

        sys.stderr.write(f"fastcode: no live spans: {exc}\n")
        return None
    try:
        return LiveExporter(url)
    except ImportError:
        import sys

        sys.stderr.write(f"fastcode: OTEL_EXPORTER_OTLP_ENDPOINT is set, but {MISSING}\n")
        return None
