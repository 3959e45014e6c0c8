"""Issue 13: hostile tool calls and hostile model responses never crash fastcode, never abort a run with an
`internal:` error and never reach a file outside the repository.

A fixed-seed slice of `tests/fuzz_harness.py` (run that script for the full-size fuzz: 10,000 tool calls and 1,000
model responses). On failure the message lists each distinct failure with its case and a reproduction; replay one
with `python tests/fuzz_harness.py --replay-tool I --seed S` or `--replay-run R --seed S`.
"""

from __future__ import annotations

from fuzz_harness import format_table, run_response_fuzz, run_tool_fuzz, silence_scripted_server_errors

SEED = 13
TOOL_CALLS = 400
RESPONSES = 45


def test_fuzzed_tool_calls_are_tool_errors_and_stay_in_the_repository() -> None:
    report = run_tool_fuzz(TOOL_CALLS, SEED)
    assert report.cases == TOOL_CALLS
    assert (report.crashes, report.internal, report.escapes) == (0, 0, 0), format_table([report])


def test_fuzzed_model_responses_never_crash_or_abort_a_run() -> None:
    with silence_scripted_server_errors():
        report = run_response_fuzz(RESPONSES, SEED, jobs=2)
    assert report.cases >= RESPONSES and report.served > 0
    assert (report.crashes, report.internal, report.escapes) == (0, 0, 0), format_table([report])
