"""Which step kind (and so which model route) the next call is, the engine's own test runs after an edit, whether a
`finish` is accepted, and when a model is stuck.

Kinds: `plan` (first call of a turn), `edit` (files were read, nothing written yet), `act` (the rest), `verify`
(tests passed after an edit) and `escalate` (the current model is stuck: two invalid tool calls in a row, two
missed edits in a row, the same failing test output twice, or replies without a usable tool call).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fastcode.agent.tool_exec import CallOutcome, is_read_only
from fastcode.context.testcmd import TestResult, run_tests_traced
from fastcode.core.events import Escalated, ToolCallSpec
from fastcode.core.prompts import render

if TYPE_CHECKING:
    from fastcode.core.config import Settings
    from fastcode.core.emitter import Emitter


class TestedRepo(Protocol):
    """What the router needs of the session to run its tests (the engine's Session is one)."""

    root: Path
    failing_tests: list[str]
    """pytest node ids that failed in the gathered run: run first after an edit."""

    def test_command(self) -> str: ...

    async def may_run_tests(self, emit: Emitter) -> bool:
        """Whether the tests (the repository's own code) may run: asked once per run where commands need approval."""
        ...


WRITES = {"edit_file", "write_file"}
_TEST_COMMAND = re.compile(
    r'^\s*\{\s*"command"\s*:\s*"\s*(?:\S*python\S* -m )?(?:pytest|unittest|(?:npm|yarn|pnpm) (?:run )?test|go test|'
    r"cargo test|tox|make test)\b"
)
_DURATION = re.compile(r"\b\d+(?:\.\d+)?s\b")
"""Timings in test output ("1 failed in 0.05s"): ignored when comparing two runs."""
REPEATED = "[You made this exact call before and its result has not changed: act on it — edit, or call finish.]"
MAX_DECLINES = 2
"""A finish is declined while the tests fail at most this many times; then the model may give up."""


@dataclass
class TurnState:
    read_something: bool = False
    edited_ever: bool = False
    edited_last_step: bool = False
    tests_passed: bool = False
    tests_failing: bool = False
    """The last test run fastcode knows of (the gathered one included) failed."""
    invalid_in_a_row: int = 0
    edit_misses_in_a_row: int = 0
    unusable_in_a_row: int = 0
    escalated_for_stuck: bool = False
    declines: int = 0
    test_outputs: list[str] = field(default_factory=list)
    escalate_reason: str = ""
    seen: set[str] = field(default_factory=set)
    """Every call made so far (name + arguments): a reply that only repeats them makes no progress."""
    tests_repeated: bool = False
    """This turn's edit left the tests failing exactly as an earlier run did: no progress either."""

    def observe(self, outcomes: list[CallOutcome]) -> None:
        """Update from one turn's tool results."""
        self.tests_repeated = False
        self.edited_last_step = any(o.ok and o.call.name in WRITES for o in outcomes)
        self.edited_ever |= self.edited_last_step
        if self.edited_last_step:  # files changed: reading them again is progress, not a repeat
            self.seen = {s for s in self.seen if not s.startswith(("read_file ", "search ", "outline "))}
        self.read_something |= any(o.ok and o.call.name in ("read_file", "outline") for o in outcomes)
        invalid = any(o.invalid for o in outcomes)
        self.invalid_in_a_row = self.invalid_in_a_row + 1 if invalid else 0
        missed = any(not o.ok and not o.invalid and o.call.name == "edit_file" for o in outcomes)
        self.edit_misses_in_a_row = self.edit_misses_in_a_row + 1 if missed else 0
        if self.edited_last_step:
            self.tests_passed = False
        for o in outcomes:
            if o.ok and is_read_only(o.call) and call_signature(o.call) in self.seen:
                o.output += f"\n\n{REPEATED}"
        for o in outcomes:  # the model ran the tests itself: its result is the latest word on them
            if o.ok and o.call.name == "run" and _TEST_COMMAND.search(o.call.arguments):
                self.tests_failing = not o.output.startswith("exit code 0")
        if self.invalid_in_a_row >= 2:
            self.escalate_reason = "two invalid tool calls in a row"
        elif self.edit_misses_in_a_row >= 2:
            self.escalate_reason = "edit_file missed twice in a row"

    def observe_tests(self, passed: bool, output: str) -> None:
        self.tests_passed, self.tests_failing = passed, not passed
        output = _DURATION.sub("", output)
        self.tests_repeated = not passed and output in self.test_outputs
        if self.tests_repeated:
            self.escalate_reason = "the same failing test output repeated"
        self.test_outputs.append(output)

    def observe_reply(self, outcomes: list[CallOutcome], stuck_after: int, can_escalate: bool) -> str:
        """Count replies without a usable tool call; escalate once when possible, else return why the run is
        stuck ("" while it is not)."""
        new = any(not o.invalid and call_signature(o.call) not in self.seen for o in outcomes)
        usable = new and not self.tests_repeated
        self.seen.update(call_signature(o.call) for o in outcomes)
        self.unusable_in_a_row = 0 if usable else self.unusable_in_a_row + 1
        if self.unusable_in_a_row < stuck_after:
            return ""
        why = (f"the model answered {self.unusable_in_a_row} times in a row without progress (no new, usable tool"
               " call, or an edit that left the tests failing as before)")  # fmt: skip
        if can_escalate and not self.escalated_for_stuck:
            self.escalated_for_stuck, self.unusable_in_a_row, self.escalate_reason = True, 0, why
            return ""
        return f"stuck: {why}"


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def next_kind(self, state: TurnState, emit: Emitter, step: int) -> str:
        if step == 1:
            return "plan"
        if state.escalate_reason:
            emit(Escalated, step=step, reason=state.escalate_reason, route="escalate")
            state.escalate_reason, state.invalid_in_a_row, state.edit_misses_in_a_row = "", 0, 0
            return "escalate"
        if state.tests_passed:
            return "verify"
        if state.read_something and not state.edited_ever:
            return "edit"
        return "act"

    def can_escalate(self, kind: str) -> bool:
        """An `escalate` route is configured and sends the call to another model than `kind` did."""
        routes = self.settings.routes
        return bool(routes.escalate) and routes.profile_for("escalate") != routes.profile_for(kind)

    def finish_declined(self, state: TurnState, outcomes: list[CallOutcome]) -> str:
        """Why a `finish` must be declined now ("" to accept it): another call of the same reply failed, or the
        tests fail and the model may still fix them."""
        if state.declines >= MAX_DECLINES:
            return ""
        if failed := [o.call.name for o in outcomes if not o.ok]:
            state.declines += 1
            return f"finish declined: {', '.join(failed)} in the same reply failed (see its result); fix that first."
        if not state.tests_failing:
            return ""
        state.declines += 1
        shown = "the output is above" if state.edited_last_step else "run them to see the failure"
        return (
            f"finish declined: the tests still fail ({shown}). Fix the failure, then call finish again; "
            "if it cannot be fixed, call finish with the reason."
        )

    async def after_tools(
        self,
        state: TurnState,
        outcomes: list[CallOutcome],
        repo: TestedRepo,
        emit: Emitter,
        step: int,
        *,
        verified: bool = False,
    ) -> str:
        """Record the turn; after an edit run the tests ourselves — first the tests that failed before, then, once
        they pass, the whole command — and return the result as text for the model ("" when nothing ran). `step`:
        the step that edited (its test runs carry it in the trace). `verified`: the edit already passed the failing
        tests and the whole command in a scratch copy (a search's winner), so the whole command alone confirms it."""
        state.observe(outcomes)
        if not (self.settings.agent.auto_test and state.edited_last_step):
            return ""
        command = repo.test_command()
        if not command:
            return ""
        if not await repo.may_run_tests(emit):
            return f"(fastcode did not run `{command}` after the edit: running the tests needs approval, declined)"
        timeout_s = min(300.0, self.settings.agent.timeout_s)
        result: TestResult | None = None
        if repo.failing_tests and not verified:
            focused = await run_tests_traced(command, repo.root, emit, timeout_s=timeout_s,
                                             select=repo.failing_tests, step=step)  # fmt: skip
            # exit 4/5: pytest did not find those ids (renamed, parametrized oddly): the whole command decides
            result = focused if not focused.passed and focused.exit_code not in (4, 5) else None
        focus = result is not None
        if result is None:
            result = await run_tests_traced(command, repo.root, emit, timeout_s=timeout_s, step=step)
        state.observe_tests(result.passed, result.output)
        return render(
            "tests_result",
            command=command,
            exit_code=result.exit_code,
            passed=result.passed,
            focused=repo.failing_tests if focus else [],
            output=result.output[-4000:],
        )


def call_signature(call: ToolCallSpec) -> str:
    """The call's name and arguments in canonical JSON: equal for the same call however it was written."""
    try:
        arguments = json.dumps(json.loads(call.arguments or "{}"), sort_keys=True)
    except (ValueError, RecursionError):
        arguments = call.arguments
    return f"{call.name} {arguments}"
