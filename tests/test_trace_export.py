"""Issue 14: a real run's trace exported as Perfetto trace-event JSON (checked against the format's rules) and as
OpenTelemetry spans received by a real OTLP/HTTP receiver (decoded with opentelemetry-proto), GenAI names included;
gathering's phases nested under `gather`, test runs with their step, and a test-time search's candidates on the
timeline."""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_cli
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from fastcode.core.config import ModelProfile
from fastcode.core.events import (
    CandidateTested,
    ModelCallFinished,
    ModelCallStarted,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    SearchFinished,
    SearchStarted,
)
from fastcode.core.events import TestsRun as RanTests  # a name pytest would try to collect
from fastcode.core.trace import build
from fastcode.frontends import otlp
from fastcode.frontends.perfetto import to_trace_events
from fastcode.models.client import provider_name

QUIET = ["-c", "agent.edit_first='never'", "-c", "context.enabled=false", "-c", "agent.auto_test=false"]
READS = {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}},
                        {"name": "search", "arguments": {"pattern": "def "}}]}  # fmt: skip
FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}


def _recorded_run(repo: Path, env: dict[str, str], scripted) -> None:
    server = scripted({"turns": [READS, FINISH], "latency": {"ttft_ms": 50}})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", *QUIET]
    assert run_cli(args, cwd=repo, env=env).returncode == 0


def _check_trace_event_format(data: dict) -> None:
    """The rules of the trace-event format that viewers rely on."""
    events = data["traceEvents"]
    named = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    for event in events:
        assert {"ph", "name", "pid", "tid"} <= set(event)
        assert event["ph"] in ("X", "i", "M")
        if event["ph"] in ("X", "i"):
            assert isinstance(event["ts"], int | float) and event["ts"] >= 0
            assert (event["pid"], event["tid"]) in named  # every track has a name
        if event["ph"] == "X":
            assert event["dur"] >= 0
        if event["ph"] == "i":
            assert event["s"] in ("g", "p", "t")
    by_track: dict[tuple, list] = {}
    for event in (e for e in events if e["ph"] == "X"):
        by_track.setdefault((event["pid"], event["tid"]), []).append((event["ts"], event["ts"] + event["dur"]))
    for spans in by_track.values():  # on one track spans follow each other, never overlap
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.1


def test_perfetto_export_of_a_real_run(sample_repo, isolated_env, scripted) -> None:
    _recorded_run(sample_repo, isolated_env, scripted)
    result = run_cli(["trace", "export"], cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.split()[0])
    data = json.loads(path.read_text())
    _check_trace_event_format(data)
    spans = [e for e in data["traceEvents"] if e["ph"] == "X"]
    calls = [e for e in spans if e["cat"] == "model" and not e["args"]["warmup"]]
    assert len(calls) == 2 and all(c["args"]["prompt_tokens"] > 0 for c in calls)
    assert {"cached_share", "ttft_ms", "completion_tokens"} <= set(calls[1]["args"])
    tools = [e for e in spans if e["cat"] == "tool"]
    assert {t["name"] for t in tools} >= {"read_file", "search"}
    tracks = {e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    assert any(name.startswith("model calls") for name in tracks.values())
    assert any(e["ph"] == "i" and e["name"] == "first token" for e in data["traceEvents"])
    out = sample_repo / "mine.json"
    assert run_cli(["trace", "export", "-o", str(out)], cwd=sample_repo, env=isolated_env).returncode == 0
    assert json.loads(out.read_text()) == data


class _Receiver:
    """A real OTLP/HTTP trace receiver: decodes each export request with opentelemetry-proto."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                owner.requests.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list:
        return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _attributes(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_otlp_export_reaches_a_real_receiver_with_genai_names(sample_repo, isolated_env, scripted) -> None:
    _recorded_run(sample_repo, isolated_env, scripted)
    receiver = _Receiver()
    try:
        env = {**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        result = run_cli(["trace", "export", "--format", "otlp"], cwd=sample_repo, env=env)
    finally:
        receiver.server.shutdown()
    assert result.returncode == 0, result.stderr
    spans = receiver.spans()
    names = [s.name for s in spans]
    assert "invoke_agent fastcode" in names and names.count("chat m") >= 2
    assert "execute_tool read_file" in names and "execute_tool search" in names
    chat = next(_attributes(s) for s in spans if s.name == "chat m" and not _attributes(s)["fastcode.warmup"])
    assert chat["gen_ai.operation.name"] == "chat" and chat["gen_ai.request.model"] == "m"
    assert chat["gen_ai.provider.name"] == "llama.cpp"  # a loopback endpoint, kind auto
    assert chat["gen_ai.usage.input_tokens"] > 0 and chat["gen_ai.usage.output_tokens"] > 0
    assert "gen_ai.usage.cache_read.input_tokens" in chat and chat["gen_ai.client.operation.time_to_first_chunk"] > 0
    chat_span = next(s for s in spans if s.name == "chat m")
    assert chat_span.kind == chat_span.SPAN_KIND_CLIENT  # the GenAI conventions' kind for a model call
    root = next(s for s in spans if s.name == "invoke_agent fastcode")
    children = [s for s in spans if s.parent_span_id == root.span_id]
    assert len(children) == len(spans) - 1 and all(s.trace_id == root.trace_id for s in spans)
    assert all(root.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano for s in children)


def test_otlp_export_without_an_endpoint_says_what_to_set(sample_repo, isolated_env, scripted) -> None:
    _recorded_run(sample_repo, isolated_env, scripted)
    result = run_cli(["trace", "export", "--format", "otlp"], cwd=sample_repo, env=isolated_env)
    assert result.returncode == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stderr
    dead = {**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    result = run_cli(["trace", "export", "--format", "otlp"], cwd=sample_repo, env=dead, timeout=60)
    assert result.returncode == 3 and "did not accept" in result.stderr


def test_spans_are_sent_live_during_a_run(sample_repo, isolated_env, scripted) -> None:
    receiver = _Receiver()
    server = scripted({"turns": [READS, FINISH], "latency": {"ttft_ms": 50}})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", *QUIET]
    try:
        env = {**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        result = run_cli(args, cwd=sample_repo, env=env)
    finally:
        receiver.server.shutdown()
    assert result.returncode == 0, result.stderr
    names = [s.name for s in receiver.spans()]
    assert "invoke_agent fastcode" in names and names.count("chat m") >= 2  # a warm-up is a chat call too
    assert "execute_tool read_file" in names


def test_a_dead_collector_costs_a_run_at_most_a_few_seconds_and_one_line(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH]})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", *QUIET]
    env = {**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    started = time.monotonic()
    result = run_cli(args, cwd=sample_repo, env=env, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert time.monotonic() - started < 15
    assert "Transient error" not in result.stderr and "Failed to export" not in result.stderr
    assert result.stderr.count("could not send the run's spans to http://127.0.0.1:9/v1/traces") == 1


def test_the_traces_endpoint_variable_and_options_before_the_run_id(sample_repo, isolated_env, scripted) -> None:
    _recorded_run(sample_repo, isolated_env, scripted)
    (run,) = (sample_repo / ".fastcode" / "runs").iterdir()
    receiver = _Receiver()
    try:
        env = {**isolated_env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/v1/traces"}
        result = run_cli(["trace", "export", "--format", "otlp", run.name[:15]], cwd=sample_repo, env=env)
    finally:
        receiver.server.shutdown()
    assert result.returncode == 0, result.stderr
    assert receiver.spans()
    bad = {**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": "not-a-url"}
    result = run_cli(["trace", "export", "--format", "otlp"], cwd=sample_repo, env=bad)
    assert result.returncode == 2 and "not an http(s) URL" in result.stderr


def _searched() -> list:
    """A run that gathered (the tests failed), then searched: #1 failed, #2 repeated it, #3 won; the tests then pass."""
    n = iter(range(100))
    call = {"route": "plan", "profile": "default", "model": "m"}

    def at(cls, t: float, **fields):
        return cls(run_id="r", seq=next(n), t=t, **fields)

    return [
        at(RunStarted, 100.0, task="fix it", repo="/r", started_at="2026-12-04T00:00:00+00:00"),
        at(PhaseStarted, 100.0, name="gather"),
        at(PhaseStarted, 100.0, name="gather.git"),
        at(PhaseStarted, 100.0, name="gather.tests"),
        at(ModelCallStarted, 100.0, call_id="warmup.1", step=0, **call, base_url="u", warmup=True),  # an old trace
        at(PhaseFinished, 100.05, name="gather.git", ms=50),
        at(ModelCallFinished, 100.1, call_id="warmup.1", step=0, **call, warmup=True),
        at(RanTests, 100.3, command="pytest -q", exit_code=1, passed=False, ms=280),
        at(PhaseFinished, 100.3, name="gather.tests", ms=300),
        at(PhaseFinished, 100.31, name="gather", ms=310),
        at(SearchStarted, 100.4, step=1, samples=3),
        at(ModelCallStarted, 100.4, call_id="1.1.1", step=1, **call, base_url="http://127.0.0.1:8080/v1",
           provider="llama.cpp"),
        at(ModelCallFinished, 101.0, call_id="1.1.1", step=1, **call, prompt_tokens=900, completion_tokens=40),
        at(CandidateTested, 101.2, step=1, index=1, call_id="1.1.1", seed=1, result="failed", diff="calc.py +1 -1",
           files=["calc.py"], tests_ms=150, detail="1 failed"),
        at(ModelCallStarted, 101.2, call_id="1.1.2", step=1, **call, base_url="u", provider="llama.cpp"),
        at(ModelCallFinished, 101.6, call_id="1.1.2", step=1, **call, prompt_tokens=900, completion_tokens=80),
        at(CandidateTested, 101.6, step=1, index=2, call_id="1.1.2", seed=2, result="duplicate",
           detail="the same as #1"),
        at(CandidateTested, 101.8, step=1, index=3, call_id="1.1.2", seed=3, result="passed", diff="calc.py +2 -1",
           files=["calc.py"], tests_ms=180),
        at(SearchFinished, 101.8, step=1, drawn=3, distinct=2, winner=3, ms=1400),
        at(RanTests, 102.1, command="pytest -q", exit_code=0, passed=True, ms=200, step=1),
        at(RunFinished, 102.2, status="finished", candidates=3, winner=3),
    ]  # fmt: skip


def test_search_candidates_and_test_steps_in_the_rows_and_the_perfetto_trace() -> None:
    builder = build(_searched())
    candidates = [r for r in builder.rows if r.kind == "candidate"]  # the duplicate was not tested: no span
    assert [(r.label, r.step, r.ok, r.winner) for r in candidates] == [
        ("candidate #1 calc.py +1 -1", 1, False, False),
        ("candidate #3 calc.py +2 -1", 1, True, True),
    ]
    assert [(round(r.start, 2), round(r.end, 2)) for r in candidates] == [(1.05, 1.2), (1.62, 1.8)]
    assert [r.step for r in builder.rows if r.kind == "tests"] == [0, 1]  # gathering, then the step that edited
    assert builder.totals().tool_s == pytest.approx(0.28 + 0.15 + 0.18 + 0.2)  # candidates' tests count as tools
    data = to_trace_events(builder)
    _check_trace_event_format(data)
    tracks = {e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    spans = [e for e in data["traceEvents"] if e["ph"] == "X"]
    tried = [e for e in spans if e["cat"] == "candidate"]
    assert {tracks[e["tid"]] for e in tried} == {"search candidates"}
    assert [e["args"] for e in tried] == [
        {"step": 1, "ok": False, "index": 1, "seed": 1, "result": "failed", "diff": "calc.py +1 -1", "winner": False},
        {"step": 1, "ok": True, "index": 3, "seed": 3, "result": "passed", "diff": "calc.py +2 -1", "winner": True},
    ]
    assert tried[1]["dur"] == pytest.approx(180_000, abs=1)
    assert [e["args"]["step"] for e in spans if e["cat"] == "tests"] == [0, 1]


def _check_spans(spans: list) -> None:
    """Gathering's phases are children of `gather`; candidates, test steps and the provider are on their spans."""
    by_name = {s.name: s for s in spans}
    root, gather = by_name["invoke_agent fastcode"], by_name["gather"]
    assert gather.parent_span_id == root.span_id
    assert by_name["gather.git"].parent_span_id == gather.span_id
    assert by_name["gather.tests"].parent_span_id == gather.span_id
    assert by_name["pytest -q"].parent_span_id == root.span_id
    tried = sorted((s for s in spans if s.name.startswith("search candidate #")), key=lambda s: s.name)
    assert [s.name for s in tried] == ["search candidate #1", "search candidate #3"]
    keys = ("fastcode.search.index", "fastcode.search.result", "fastcode.search.winner")
    assert [tuple(_attributes(s)[k] for k in keys) for s in tried] == [(1, "failed", False), (3, "passed", True)]
    assert [s.status.code for s in tried] == [Status.STATUS_CODE_ERROR, Status.STATUS_CODE_UNSET]  # a loser: ERROR
    assert all(s.parent_span_id == root.span_id for s in tried)
    steps = sorted(_attributes(s)["fastcode.step"] for s in spans if s.name == "pytest -q")
    assert steps == [0, 1]
    chats = [_attributes(s) for s in spans if s.name == "chat m"]
    assert [a["gen_ai.provider.name"] for a in chats if not a["fastcode.warmup"]] == ["llama.cpp", "llama.cpp"]
    assert [a for a in chats if a["fastcode.warmup"] and "gen_ai.provider.name" in a] == []  # not recorded: left out


def test_otlp_export_nests_gathering_and_carries_candidates(monkeypatch) -> None:
    receiver = _Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    try:
        assert otlp.send(build(_searched())) == 11
    finally:
        receiver.server.shutdown()
    _check_spans(receiver.spans())


def test_live_spans_nest_gathering_and_carry_candidates() -> None:
    receiver = _Receiver()
    live = otlp.LiveExporter(receiver.url + "/v1/traces")
    try:
        for event in _searched():
            live(event)
        live.close()
    finally:
        receiver.server.shutdown()
    spans = receiver.spans()
    assert len(spans) == 11 and len({s.span_id for s in spans}) == 11  # each span once
    _check_spans(spans)


def test_a_real_run_nests_gathering_under_gather_live_and_exported(sample_repo, isolated_env, scripted) -> None:
    live, exported = _Receiver(), _Receiver()
    server = scripted({"turns": [FINISH]})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", "-c", "agent.edit_first='never'",
            "-c", "agent.auto_test=false"]  # fmt: skip
    try:
        result = run_cli(args, cwd=sample_repo, env={**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": live.url})
        export = ["trace", "export", "--format", "otlp"]
        sent = run_cli(export, cwd=sample_repo, env={**isolated_env, "OTEL_EXPORTER_OTLP_ENDPOINT": exported.url})
    finally:
        live.server.shutdown()
        exported.server.shutdown()
    assert result.returncode == 0 and sent.returncode == 0, result.stderr + sent.stderr
    for spans in (live.spans(), exported.spans()):
        gather = next(s for s in spans if s.name == "gather")
        parts = [s for s in spans if s.name.startswith("gather.")]
        assert {s.name for s in parts} >= {"gather.git", "gather.map", "gather.search"}
        assert all(s.parent_span_id == gather.span_id for s in parts)
        assert all(gather.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano
                   <= gather.end_time_unix_nano for s in parts)  # fmt: skip
        root = next(s for s in spans if s.name == "invoke_agent fastcode")
        assert gather.parent_span_id == root.span_id


@pytest.mark.parametrize(
    ("base_url", "kind", "provider"),
    [
        ("https://api.openai.com/v1", "auto", "openai"),
        ("https://api.groq.com/openai/v1", "auto", "groq"),
        ("https://api.anthropic.com/v1/", "auto", "anthropic"),
        ("https://api.mistral.ai/v1", "auto", "mistral_ai"),
        ("https://api.deepseek.com/v1", "auto", "deepseek"),
        ("https://api.x.ai/v1", "auto", "x_ai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "auto", "gcp.gemini"),
        ("http://127.0.0.1:8080/v1", "auto", "llama.cpp"),
        ("http://gpu-box:8000/v1", "vllm", "vllm"),
        ("http://gpu-box:8080/v1", "llamacpp", "llama.cpp"),
        ("https://LLM.example.com/v1", "auto", "llm.example.com"),
    ],
)
def test_the_provider_name_of_an_endpoint(base_url: str, kind: str, provider: str) -> None:
    assert provider_name(ModelProfile(base_url=base_url, kind=kind)) == provider
