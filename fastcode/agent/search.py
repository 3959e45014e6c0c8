"""Test-time search: when the gathered tests fail, candidate fixes are drawn from one cached prompt and the tests
choose.

Every candidate is drawn from the same messages, byte for byte (the server's prompt cache covers them, so a further
candidate costs its decode only); the first at `agent.search.first_temperature` (0: the model's most likely answer,
what a run without search would try), the others at `agent.search.temperature`, each with its own seed. A candidate
that repeats an earlier one is not tested again. Each is applied to a scratch copy of the repository (never the
user's tree), the tests that failed run first and then the whole command, and the copy is put back; the first
candidate both pass wins and the search stops. Further candidates come several per request (`n`) only where the
endpoint's own decode rates show batching pays (a GPU server); on a CPU they come one after another from the warm
slot.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastcode.agent.edit_first import Attempt, candidate
from fastcode.checkpoint.scratch import ScratchCopy
from fastcode.context.testcmd import TestResult, run_tests
from fastcode.core.config import SearchSection
from fastcode.core.emitter import Emitter
from fastcode.core.endpoint_memory import recall, remember
from fastcode.core.events import CandidateTested, SearchFinished, SearchStarted, ToolCallSpec
from fastcode.tools import execute
from fastcode.tools.base import ToolContext, ToolError

BATCH = 4
"""Candidates asked for in one request once batching has shown it pays."""
REPEATS = 3
"""The search stops after this many candidates in a row repeat earlier ones: the model has settled."""
PAYS = 1.5
"""Batching pays when a batch of two decodes at least this many times the tokens per second of a single answer."""
BATCHING = "batching"
"""The endpoint memory (`~/.cache/fastcode/batching.json`) where what a batch of two showed is kept: later runs on
the same endpoint skip the measurement (on a CPU it costs a few seconds over two single answers)."""


@dataclass(frozen=True)
class Drawn:
    """One candidate as the model gave it."""

    calls: list[ToolCallSpec]
    text: str
    call_id: str
    seed: int
    temperature: float | None
    decode_ms: float
    """This candidate's share of the call's decoding time."""
    completion_tokens: int
    """Tokens the whole call decoded (all of its candidates)."""
    assistant: dict
    """The reply as the conversation would keep it."""


Draw = Callable[[int, float | None, int], Awaitable[list[Drawn]]]
"""(seed, temperature or None for the profile's own, how many) -> the candidates of one request."""


@dataclass
class Tried:
    index: int
    drawn: Drawn
    passed: bool
    tests: TestResult | None
    edits: list[tuple[ToolCallSpec, str]]
    """Each edit call and what applying it said (in the copy)."""


@dataclass
class Outcome:
    winner: Tried | None = None
    first: Tried | None = None
    """The first answer and what the tests said of it: the conversation goes on from it when nothing won."""
    drawn: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    repeats: int = 0
    """Candidates in a row that repeated an earlier one."""


class FixSearch:
    """One search: draw, dedupe, try in a scratch copy, stop at the first candidate the tests pass."""

    def __init__(
        self,
        root: Path,
        command: str,
        failing: list[str],
        settings: SearchSection,
        samples: int,
        emit: Emitter,
        step: int,
        *,
        timeout_s: float = 300.0,
        endpoint: str = "",
    ) -> None:
        self.root, self.command, self.failing, self.settings = root, command, failing, settings
        self.samples, self.emit, self.step, self.timeout_s = samples, emit, step, timeout_s
        self.endpoint = endpoint
        """The endpoint's memory key: what a batch of two showed there is measured once, then remembered."""
        self.batch = settings.draw == "batch"
        self.why = {"batch": "agent.search.draw = batch", "sequential": "agent.search.draw = sequential"}.get(
            settings.draw, ""
        )
        known = recall(BATCHING, endpoint) if endpoint and settings.draw == "auto" else None
        if isinstance(known, dict) and isinstance(known.get("pays"), bool) and isinstance(known.get("why"), str):
            self.batch, self.why = known["pays"], f"{known['why']} (measured by an earlier run)"

    async def run(self, draw: Draw, copy: ScratchCopy, copy_ms: float = 0.0) -> Outcome:
        """Search in `copy` (removed at the end, also on an interrupt)."""
        started = time.perf_counter()
        outcome = Outcome()
        with copy:
            self.emit(SearchStarted, step=self.step, samples=self.samples, failing=self.failing, copy_ms=copy_ms)
            first = await draw(1, self.settings.first_temperature, 1)
            pending, single_tps = list(first), _tps(first)
            while pending or outcome.drawn < self.samples:
                if not pending:
                    pending = await self._more(draw, outcome.drawn, single_tps)
                    if not pending:
                        break
                tried = await self._try(pending.pop(0), outcome, copy)
                if tried is not None and tried.passed:
                    outcome.winner = tried
                    break
                if outcome.drawn >= self.samples or outcome.repeats >= REPEATS:
                    break
        ms = round((time.perf_counter() - started) * 1000, 2)
        self.emit(SearchFinished, step=self.step, drawn=outcome.drawn, distinct=len(outcome.seen),
                  winner=outcome.winner.index if outcome.winner else None,
                  draw="batch" if self.batch else "sequential", draw_reason=self.why, ms=ms)  # fmt: skip
        return outcome

    async def _more(self, draw: Draw, drawn: int, single_tps: float | None) -> list[Drawn]:
        """The next request's candidates: one, or a batch where batching pays (tried once with two on auto)."""
        left, temperature = self.samples - drawn, self.settings.temperature
        if self.settings.draw == "auto" and not self.why and left >= 2:  # measure once: a batch of two
            got = await draw(drawn + 1, temperature, 2)
            batch_tps = _tps(got)
            if len(got) < 2:
                self.why = "the endpoint answered one choice when asked for n=2"
            elif single_tps and batch_tps and batch_tps >= PAYS * single_tps:
                self.batch = True
                self.why = f"n=2 decoded {batch_tps:.0f} tok/s in all vs {single_tps:.0f} for one: batching pays"
            else:
                self.why = (f"n=2 decoded {batch_tps or 0:.0f} tok/s in all vs {single_tps or 0:.0f} for one: "
                            "batching does not pay")  # fmt: skip
            remember(BATCHING, self.endpoint, {"pays": self.batch, "why": self.why})
            return got
        if self.settings.draw == "auto" and not self.why:
            self.why = "one candidate left: nothing to batch"
        return await draw(drawn + 1, temperature, min(BATCH, left) if self.batch else 1)

    async def _try(self, drawn: Drawn, outcome: Outcome, copy: ScratchCopy) -> Tried | None:
        outcome.drawn += 1
        index = outcome.drawn
        report = dict(step=self.step, index=index, call_id=drawn.call_id, seed=drawn.seed,
                      temperature=drawn.temperature, decode_ms=drawn.decode_ms)  # fmt: skip
        signature = candidate(drawn.calls)
        outcome.repeats = outcome.repeats + 1 if signature in outcome.seen else 0
        if signature in outcome.seen:
            self.emit(CandidateTested, **report, result="duplicate", detail=f"the same as #{outcome.seen[signature]}")
            return None
        outcome.seen[signature] = index
        edits = [c for c in drawn.calls if c.name != "finish"]
        attempt = Attempt()
        ctx = ToolContext(copy.path, before_write=attempt.before_write)
        said: list[tuple[ToolCallSpec, str]] = []
        for call in edits:
            try:
                said.append((call, (await execute(call.name, call.arguments, ctx)).output))
            except ToolError as exc:
                said.append((call, f"error: {exc}"))
        diff, files = _summary(copy, attempt)
        tried = Tried(index, drawn, False, None, said)
        if outcome.first is None:
            outcome.first = tried
        if not files:
            failed = [out for _, out in said if out.startswith("error:")]
            result = "edit failed" if failed else "no edit"
            self.emit(CandidateTested, **report, result=result, detail=(failed or [""])[0][:300])
            return tried
        testing = time.perf_counter()
        try:
            tests = await self._test(copy)
        finally:
            attempt.revert(copy.path)
        tests_ms = round((time.perf_counter() - testing) * 1000, 2)  # both runs: the failing tests, then the whole
        tried.tests, tried.passed = tests, tests.passed
        tail = tests.output.strip().splitlines()[-1:] or [""]
        self.emit(CandidateTested, **report, result="passed" if tests.passed else "failed", diff=diff, files=files,
                  tests_ms=tests_ms, detail="" if tests.passed else tail[0][:300])  # fmt: skip
        return tried

    async def _test(self, copy: ScratchCopy) -> TestResult:
        """The failing tests first (cheap, and most candidates fail there), then the whole command."""
        run = dict(timeout_s=self.timeout_s, copy=copy.path)
        if self.failing:
            focused = await run_tests(self.command, self.root, select=self.failing, **run)
            if not focused.passed and focused.exit_code not in (4, 5):
                return _shown(focused, copy, self.root)
        return _shown(await run_tests(self.command, self.root, **run), copy, self.root)


def _tps(drawn: list[Drawn]) -> float | None:
    """Tokens per second the request decoded, all of its candidates together."""
    if not drawn or drawn[0].decode_ms <= 0:
        return None
    return drawn[0].completion_tokens / (sum(d.decode_ms for d in drawn) / 1000)


def _summary(copy: ScratchCopy, attempt: Attempt) -> tuple[str, list[str]]:
    """ "calc.py +1 -1" for each file the candidate changed in the copy, and the files' paths."""
    parts, files = [], []
    for path, before in attempt.originals.items():
        after = path.read_bytes() if path.is_file() else None
        if after == before:
            continue
        rel = path.relative_to(copy.path).as_posix()
        old = (before or b"").decode("utf-8", "replace").splitlines()
        new = (after or b"").decode("utf-8", "replace").splitlines()
        lines = list(difflib.unified_diff(old, new, lineterm="", n=0))[2:]
        added = sum(1 for line in lines if line.startswith("+"))
        removed = sum(1 for line in lines if line.startswith("-"))
        parts.append(f"{rel} +{added} -{removed}")
        files.append(rel)
    return ", ".join(parts), files


def _shown(result: TestResult, copy: ScratchCopy, root: Path) -> TestResult:
    """The result as if run in the repository: the copy's path replaced by the root's in the output."""
    from dataclasses import replace

    return replace(result, output=result.output.replace(str(copy.path), str(root)))
