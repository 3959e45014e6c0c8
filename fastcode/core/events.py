"""The event types: the only contract between the engine and every front end.

The engine yields these, in order, one stream per run. The headless printer, the JSONL output, the trace file, the
TUI and the eval harness all read this stream and nothing else. Every event is frozen and carries `type`, the run
id, a sequence number and a monotonic timestamp `t` (seconds, `time.perf_counter()`); spans pair by id
(`call_id` for model calls, `tool_id` for tool calls, `step` for steps, `name` for phases).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Event(BaseModel):
    """Fields every event has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    seq: int
    t: float


class RunStarted(Event):
    type: Literal["run_started"] = "run_started"
    task: str
    repo: str
    started_at: str
    """Wall-clock start, ISO 8601 UTC (the only wall-clock field: spans use `t`)."""
    routes: dict[str, str] = {}
    """Step kind -> "profile: model @ base_url", for the status line."""
    turn: int = 1
    """1 for a new session; follow-up turns of the same session count up."""
    sandbox: str = ""
    """What confines the commands the agent runs (`Sandbox.describe`), for the status line."""
    session_id: str = ""
    """The run id of the conversation's first turn (the same for every follow-up turn)."""


class PhaseStarted(Event):
    """A named phase outside the step loop: `gather`, `gather.git`, `warmup`, `tests`, `checkpoint`, …"""

    type: Literal["phase_started"] = "phase_started"
    name: str


class PhaseFinished(Event):
    type: Literal["phase_finished"] = "phase_finished"
    name: str
    ms: float
    ok: bool = True
    detail: str = ""


class StepStarted(Event):
    type: Literal["step_started"] = "step_started"
    step: int
    route: str


class ModelCallStarted(Event):
    type: Literal["model_call_started"] = "model_call_started"
    call_id: str
    step: int
    route: str
    profile: str
    model: str
    base_url: str
    provider: str = ""
    """Who serves the model, as OpenTelemetry's `gen_ai.provider.name` says it ("openai", "llama.cpp", "vllm", or
    the endpoint's host); "" in traces written before it was recorded."""
    prefix_hash: str = ""
    """Hash of every message before the newest user/tool message, with the tools."""
    prefix_break: bool = False
    """True when the previous call to the same model is not a prefix of this one."""
    warmup: bool = False


class FirstToken(Event):
    type: Literal["first_token"] = "first_token"
    call_id: str
    ttft_ms: float


class TextDelta(Event):
    """Streamed assistant text; `kind` is "content" or "reasoning"."""

    type: Literal["text_delta"] = "text_delta"
    call_id: str
    text: str
    kind: Literal["content", "reasoning"] = "content"


class ToolCallSpec(BaseModel):
    """One tool call as the model asked for it (arguments still raw JSON text)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str


class ModelCallFinished(Event):
    type: Literal["model_call_finished"] = "model_call_finished"
    call_id: str
    step: int
    route: str
    profile: str
    model: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    decode_ms: float = 0.0
    total_ms: float = 0.0
    setup_ms: float = 0.0
    """Of `total_ms`, fastcode's own time before the request went out (the HTTP client made on the first call)."""
    server_prefill_ms: float | None = None
    """The server's own time on the prompt where it reports it (llama.cpp `timings.prompt_ms`, vLLM
    `metrics.time_to_first_token_ms` with `--enable-per-request-metrics`): `ttft_ms` minus this is the wait before the
    server got to it (queue, network, fastcode's setup)."""
    decode_tps: float | None = None
    content: str = ""
    tool_calls: list[ToolCallSpec] = []
    finish_reason: str | None = None
    prefix_break: bool = False
    warmup: bool = False
    tool_mode: str = ""
    """How tool calls were asked for: native, constrained or text."""
    recovered: str = ""
    """Where tool calls written as text were found ("fenced json", "tool_call tag", …); "" when none were."""


class ContextBudgeted(Event):
    """How much gathered context the first call got: the token budget from the measured prefill rate."""

    type: Literal["context_budgeted"] = "context_budgeted"
    budget_tokens: int
    prefill_tps: float
    rate_source: str
    """Where the rate came from: "warm-up", "model call", "previous run" or "assumed"."""
    used_tokens: int
    left_out: list[str] = []
    """Titles of the sections that did not fit."""


class PlanProposed(Event):
    type: Literal["plan"] = "plan"
    items: list[str]


class ToolStarted(Event):
    type: Literal["tool_started"] = "tool_started"
    tool_id: str
    step: int
    name: str
    arguments: dict[str, Any] | str


class ApprovalRequested(Event):
    """The engine waits for the front end's answer before running this tool call."""

    type: Literal["approval_requested"] = "approval_requested"
    tool_id: str
    name: str
    arguments: dict[str, Any]
    preview: str = ""


class ToolFinished(Event):
    type: Literal["tool_finished"] = "tool_finished"
    tool_id: str
    step: int
    name: str
    ok: bool
    output: str
    """What the model sees (already bounded by the tool)."""
    ms: float
    changed_files: list[str] = []


class TestsRun(Event):
    """The engine ran the test command itself (after an edit, or while gathering context)."""

    type: Literal["tests_run"] = "tests_run"
    command: str
    exit_code: int | None
    passed: bool
    ms: float
    output_tail: str = ""
    runner: str = "subprocess"
    """"warm" (forked from the warm test runner, pytest already imported) or "subprocess"."""
    note: str = ""
    """Why a pytest command ran as a subprocess instead of warm ("" when it did not fall back)."""
    step: int = 0
    """The step whose edit the run checks; 0 while gathering context, before the first step."""


class AttemptRejected(Event):
    """An edit-first reply the tests rejected: its edits were taken back and another sample is drawn."""

    type: Literal["attempt_rejected"] = "attempt_rejected"
    step: int
    reason: str
    files: list[str] = []
    """The files put back as they were."""


class SearchStarted(Event):
    """Test-time search began: the gathered tests fail, so candidate fixes are drawn from the same cached prompt and
    tried in a scratch copy of the repository (the user's tree is written only by a winner)."""

    type: Literal["search_started"] = "search_started"
    step: int
    samples: int
    """Candidates the search may draw at most."""
    failing: list[str] = []
    """The tests each candidate must make pass (run first), before the whole command."""
    copy_ms: float = 0.0
    """Time to make the scratch copy."""


class CandidateTested(Event):
    """One candidate fix of a search: how it was drawn, what it changes, and what the tests said."""

    type: Literal["candidate_tested"] = "candidate_tested"
    step: int
    index: int
    """1-based, in the order drawn; 1 is the first answer (what a run without search would have tried)."""
    call_id: str
    """The model call that drew it (several candidates share one call when drawn as a batch)."""
    seed: int
    temperature: float | None = None
    decode_ms: float = 0.0
    """This candidate's share of the call's decoding time."""
    result: Literal["passed", "failed", "duplicate", "no edit", "edit failed"]
    diff: str = ""
    """A short summary: each file with lines added and removed ("calc.py +1 -1")."""
    files: list[str] = []
    tests_ms: float = 0.0
    """Its tests in the scratch copy, end to end (the failing tests, then the whole command when they pass)."""
    detail: str = ""
    """Why it lost: the tests' last line, the edit's error, or the candidate it repeats."""

    def line(self) -> str:
        """ "#2 seed 2 t=0.8 · 1.8 s decode · calc.py +1 -1 · failed (95 ms): 1 failed in 0.1s"."""
        temperature = f" t={self.temperature:g}" if self.temperature is not None else ""
        parts = [f"#{self.index} seed {self.seed}{temperature}", f"{self.decode_ms / 1000:.1f} s decode"]
        parts += [self.diff] if self.diff else []
        verdict = self.result + (f" ({self.tests_ms:.0f} ms)" if self.tests_ms else "")
        return " · ".join([*parts, verdict + (f": {self.detail}" if self.detail else "")])


class SearchFinished(Event):
    """The search ended: with a winner (applied to the user's tree next), or none (the run goes on as usual)."""

    type: Literal["search_finished"] = "search_finished"
    step: int
    drawn: int
    distinct: int
    winner: int | None = None
    """The winning candidate's index (None: no candidate passed)."""
    draw: Literal["sequential", "batch"] = "sequential"
    """How candidates after the first were drawn."""
    draw_reason: str = ""
    """Why: the endpoint's measured decode rates, a setting, or the endpoint not supporting `n`."""
    ms: float = 0.0


class Escalated(Event):
    type: Literal["escalated"] = "escalated"
    step: int
    reason: str
    route: str


class StepFinished(Event):
    type: Literal["step_finished"] = "step_finished"
    step: int
    ms: float


class RunFinished(Event):
    type: Literal["run_finished"] = "run_finished"
    status: Literal["finished", "max_steps", "stuck", "timeout", "interrupted", "error"]
    summary: str = ""
    steps: int = 0
    model_calls: int = 0
    wall_s: float = 0.0
    diff: str = ""
    exit_code: int = 0
    candidates: int = 0
    """Candidate fixes a test-time search drew (0: no search ran)."""
    winner: int | None = None
    """The candidate the tests chose (its index), when a search found one."""


class Retrying(Event):
    """A model call failed in a way worth retrying (connection, 429, 5xx); it is sent again after `wait_s`."""

    type: Literal["retrying"] = "retrying"
    call_id: str
    attempt: int
    wait_s: float
    reason: str
    """What failed, and the server's Retry-After when it sent one."""


class ErrorEvent(Event):
    type: Literal["error"] = "error"
    kind: str
    """"endpoint", "auth", "model_not_found", "config", "internal", …"""
    message: str


AnyEvent = Annotated[
    RunStarted
    | PhaseStarted
    | PhaseFinished
    | StepStarted
    | ModelCallStarted
    | FirstToken
    | TextDelta
    | ModelCallFinished
    | ContextBudgeted
    | PlanProposed
    | ToolStarted
    | ApprovalRequested
    | SearchStarted
    | CandidateTested
    | SearchFinished
    | ToolFinished
    | TestsRun
    | Escalated
    | AttemptRejected
    | StepFinished
    | RunFinished
    | Retrying
    | ErrorEvent,
    Field(discriminator="type"),
]

_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def parse_event(line: str | bytes) -> AnyEvent:
    """Read one event back from its JSON form (a trace line)."""
    return _adapter.validate_json(line)


def event_json(event: Event) -> str:
    """The one-line JSON form of an event, as the trace file and `--json` write it."""
    return event.model_dump_json()
