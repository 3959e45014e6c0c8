"""One instance, start to end: copy -> setup -> the agent (or the gold patch) -> hidden tests -> score.

Whatever goes wrong with the instance itself (its repository, setup, patches, test command) becomes an `error`
result; it never stops the run. The copy is removed afterwards unless `keep` is set.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastcode.evals.agent import AgentError, AgentOptions, run_agent
from fastcode.evals.instances import Instance
from fastcode.evals.procs import child_env, run_shell, tail
from fastcode.evals.report import InstanceResult
from fastcode.evals.scoring import grade, run_tests
from fastcode.evals.workspace import Workspace, WorkspaceError, patch_paths

SETUP_TIMEOUT_S = 600.0
TEST_TIMEOUT_S = 900.0


class InstanceError(Exception):
    """A problem with the instance: reported as its error."""


@dataclass
class RunOptions:
    out: Path
    mode: str = "agent"
    """"agent" (the model runs) or "gold" (apply `patch` instead)."""
    agent: AgentOptions = field(default_factory=AgentOptions)
    keep: bool = False
    test_timeout_s: float = TEST_TIMEOUT_S
    failing_tests: bool = False
    """Show the agent the failing tests: `test_patch` is applied before it runs and its task starts with "fix the
    failing tests" (a "fix the failing test" task, as test-time search needs); the scored patch leaves them out."""
    scratch_parent: Path | None = None
    """Where the throwaway copy goes (default: the system's temp folder)."""


def run_instance(instance: Instance, opts: RunOptions) -> InstanceResult:
    started = time.perf_counter()
    logs = opts.out / "instances" / instance.instance_id
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    result = InstanceResult(instance_id=instance.instance_id, mode=opts.mode)
    scratch = Path(tempfile.mkdtemp(prefix=f"fastcode-eval-{instance.instance_id}-", dir=opts.scratch_parent))
    try:
        _run(instance, opts, scratch, logs, result)
    except (InstanceError, WorkspaceError, AgentError) as exc:
        result.status, result.error = "error", str(exc)
    except Exception as exc:  # a bug of ours or a broken file: still only this instance's error
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        if opts.keep:
            result.workspace = str(scratch / "repo")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        result.total_s = round(time.perf_counter() - started, 3)
    return result


def _run(instance: Instance, opts: RunOptions, scratch: Path, logs: Path, result: InstanceResult) -> None:
    if not instance.test_cmd.strip():
        raise InstanceError("no test_cmd: the instance does not say how to run its tests")
    if not instance.FAIL_TO_PASS and not instance.PASS_TO_PASS:
        raise InstanceError("FAIL_TO_PASS and PASS_TO_PASS are both empty: nothing decides the instance")
    if opts.mode == "gold" and not instance.patch.strip():
        raise InstanceError("--gold: the instance has no patch")
    ws = Workspace.create(instance, scratch / "repo")
    for number, command in enumerate(instance.setup, 1):
        done = run_shell(
            command, cwd=ws.path, env=child_env(), timeout_s=SETUP_TIMEOUT_S, log=logs / f"setup-{number}.log"
        )
        if done.exit_code != 0:
            how = "timed out" if done.exit_code is None else f"exit {done.exit_code}"
            raise InstanceError(f"setup command {number} failed ({how}): {tail(done.output)}")
    if opts.mode == "gold":
        ws.apply(instance.patch, what="gold patch")
    elif opts.mode == "agent":
        task = instance.problem_statement
        if opts.failing_tests and instance.test_patch.strip():
            ws.apply(instance.test_patch, what="test_patch")
            task = f"Fix the failing tests.\n\n{task.strip()}"
        run = run_agent(task, ws.path, opts.agent, instance_id=instance.instance_id, logs=logs)
        _record_agent(result, run.result, run.exit_code, run.trace, logs)
    if instance.test_patch.strip():  # the tests are the judge's: never part of the answer
        ws.reset_paths(patch_paths(instance.test_patch))
    result.model_patch = ws.diff()
    (logs / "model.patch").write_text(result.model_patch, encoding="utf-8")
    if instance.test_patch.strip():
        ws.reset_paths(patch_paths(instance.test_patch))
        ws.apply(instance.test_patch, what="test_patch")
    tests = run_tests(
        instance.test_cmd, ws.path, scratch=scratch, timeout_s=opts.test_timeout_s, log=logs / "tests.log"
    )
    if broken := tests.broken_command():
        raise InstanceError(f"{broken}: {tail(tests.output)}")
    graded = grade(tests.statuses, instance.FAIL_TO_PASS, instance.PASS_TO_PASS)
    result.resolved = graded.resolved
    result.status = "resolved" if graded.resolved else "unresolved"
    result.fail_to_pass = f"{graded.fail_to_pass[0]}/{graded.fail_to_pass[1]}"
    result.pass_to_pass = f"{graded.pass_to_pass[0]}/{graded.pass_to_pass[1]}"
    result.failing = graded.failing[:20]
    result.tests_s = tests.seconds
    if tests.timed_out:
        result.note = f"the tests timed out after {opts.test_timeout_s:.0f} s"


def _record_agent(result: InstanceResult, final: dict, exit_code: int, trace: Path | None, logs: Path) -> None:
    result.agent_status = final.get("status")
    result.exit_code = exit_code
    result.steps = int(final.get("steps") or 0)
    result.model_calls = int(final.get("model_calls") or 0)
    result.candidates, result.winner = int(final.get("candidates") or 0), final.get("winner")
    result.wall_s = final.get("wall_s")
    if trace is None:
        result.note = "the agent left no trace"
        return
    kept = logs / "trace.jsonl"
    shutil.copyfile(trace, kept)
    result.trace = str(kept.resolve())
    from fastcode.core.trace import build, read_trace

    builder = build(read_trace(kept))
    totals = builder.totals()
    calls = [r for r in builder.rows if r.kind == "model" and not r.warmup and r.end is not None]
    ttfts = [r.ttft_ms for r in calls if r.ttft_ms is not None]
    result.model_calls = totals.model_calls
    result.prompt_tokens, result.cached_tokens = totals.prompt_tokens, totals.cached_tokens
    result.completion_tokens = sum(r.completion_tokens for r in calls)
    result.ttft_ms_median = round(statistics.median(ttfts), 1) if ttfts else None
    result.model_s, result.tool_s, result.other_s = totals.model_s, totals.tool_s, totals.other_s
