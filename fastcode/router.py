"""Which step kind (and so which model route) the next call is, and the engine's own test run after an edit.

Kinds: `plan` (first call of a turn), `edit` (files were read, nothing written yet), `act` (the rest), `verify`
(tests passed after an edit) and `escalate` (the current model is stuck: two invalid tool calls in a row, two
missed edits in a row, or the same failing test output twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastcode.context.testcmd import run_tests_traced
from fastcode.events import Escalated
from fastcode.messages import user
from fastcode.prompts import render
from fastcode.tool_exec import CallOutcome

if TYPE_CHECKING:
    from fastcode.config import Settings
    from fastcode.emitter import Emitter
    from fastcode.engine import Session

WRITES = {"edit_file", "write_file"}


@dataclass
class TurnState:
    read_something: bool = False
    edited_ever: bool = False
    edited_last_step: bool = False
    tests_passed: bool = False
    invalid_in_a_row: int = 0
    edit_misses_in_a_row: int = 0
    test_outputs: list[str] = field(default_factory=list)
    escalate_reason: str = ""

    def observe(self, outcomes: list[CallOutcome]) -> None:
        """Update from one turn's tool results."""
        self.edited_last_step = any(o.ok and o.call.name in WRITES for o in outcomes)
        self.edited_ever |= self.edited_last_step
        self.read_something |= any(o.ok and o.call.name in ("read_file", "outline") for o in outcomes)
        invalid = any(o.invalid for o in outcomes)
        self.invalid_in_a_row = self.invalid_in_a_row + 1 if invalid else 0
        missed = any(not o.ok and not o.invalid and o.call.name == "edit_file" for o in outcomes)
        self.edit_misses_in_a_row = self.edit_misses_in_a_row + 1 if missed else 0
        if self.edited_last_step:
            self.tests_passed = False
        if self.invalid_in_a_row >= 2:
            self.escalate_reason = "two invalid tool calls in a row"
        elif self.edit_misses_in_a_row >= 2:
            self.escalate_reason = "edit_file missed twice in a row"

    def observe_tests(self, passed: bool, output: str) -> None:
        self.tests_passed = passed
        if not passed and output in self.test_outputs:
            self.escalate_reason = "the same failing test output repeated"
        self.test_outputs.append(output)


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

    async def after_tools(self, state: TurnState, session: Session, emit: Emitter) -> None:
        """After an edit, run the tests ourselves and append the result: one model call saved per edit."""
        if not (self.settings.agent.auto_test and state.edited_last_step):
            return
        command = session.test_command()
        if not command:
            return
        timeout_s = min(300.0, self.settings.agent.timeout_s)
        result = await run_tests_traced(command, session.root, emit, timeout_s=timeout_s)
        state.observe_tests(result.passed, result.output)
        session.messages.append(
            user(
                render(
                    "tests_result",
                    command=command,
                    exit_code=result.exit_code,
                    passed=result.passed,
                    output=result.output[-4000:],
                )
            )
        )
