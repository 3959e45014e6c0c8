"""`fastcode eval make-tasks REPO --n K --out SUITE.jsonl`: instances from injected single-location bugs.

The repository's tests must pass. Candidates come from `mutate.candidates` in a seed-determined order; each is
written into one of `workers` private copies and the tests run there (the slow part, so two at a time by default).
Decisions are taken in candidate order and stop at K kept mutants, so the output depends only on the repo and the
seed. A mutant is kept when 1..max_fail tests that passed before now fail; its instance carries those tests as
FAIL_TO_PASS, the reverse of the mutation as the gold patch, and a problem statement made of the failures (the
failing tests and their assertion lines; never the file or line of the change).
"""

from __future__ import annotations

import hashlib
import queue
import re
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from fastcode.evals.instances import Instance, dump_instance
from fastcode.evals.mutate import Mutation, candidates
from fastcode.evals.scoring import PASSING, failure_texts, run_tests
from fastcode.evals.workspace import Workspace, WorkspaceError, git, is_git_repo

MAX_SHOWN_TESTS = 3
MAX_LINES_PER_TEST = 12
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


class GeneratorError(Exception):
    """The repository cannot be used (not a folder, tests failing or missing): one line, exit 2."""


@dataclass
class Report:
    kept: list[str] = field(default_factory=list)
    tried: int = 0
    candidates: int = 0
    seconds: float = 0.0


@dataclass
class _Outcome:
    mutation: Mutation
    failing: list[str]
    texts: dict[str, str]
    gold: str
    timed_out: bool


class _Slot:
    """One private copy of the repository, used by one mutant at a time."""

    def __init__(self, ws: Workspace, scratch: Path) -> None:
        self.ws, self.scratch = ws, scratch


def make_tasks(
    repo: Path,
    *,
    n: int,
    out: Path,
    seed: int = 0,
    test_cmd: str = "python -m pytest -q",
    workers: int = 2,
    max_fail: int = 10,
    stream: TextIO | None = None,
) -> Report:
    started = time.perf_counter()
    repo = repo.resolve()
    say = (lambda text: stream.write(text + "\n") and stream.flush()) if stream else (lambda text: None)
    base_commit = None
    if is_git_repo(repo):
        base_commit = git(repo, "rev-parse", "HEAD").strip()
        if git(repo, "status", "--porcelain", "--untracked-files=no").strip():
            say(f"note: {repo} has uncommitted changes; tasks are made from HEAD ({base_commit[:10]})")
    probe = Instance(
        instance_id="probe", problem_statement="", repo_path=str(repo), base_commit=base_commit, test_cmd=test_cmd
    )
    tmp = Path(tempfile.mkdtemp(prefix="fastcode-make-tasks-"))
    try:
        slots = []
        for i in range(workers):
            (tmp / f"scratch{i}").mkdir()
            try:
                slots.append(_Slot(Workspace.create(probe, tmp / f"repo{i}"), tmp / f"scratch{i}"))
            except WorkspaceError as exc:
                raise GeneratorError(str(exc)) from None
        passing, limit_s = _baseline(slots[0], test_cmd, say)
        todo = _unique(candidates(slots[0].ws.path, seed), slots[0].ws.path)
        say(f"{len(todo)} candidate mutations; testing up to {workers} at a time until {n} are kept")
        report = Report(candidates=len(todo))
        outcomes = _search(todo, slots, test_cmd, passing, limit_s, n, max_fail, report, say)
        lines = []
        for outcome in outcomes:
            instance = _instance(outcome, repo, base_commit, test_cmd, passing, seed)
            report.kept.append(instance.instance_id)
            lines.append(dump_instance(instance, relative_to=out.resolve().parent) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(lines), encoding="utf-8")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = round(time.perf_counter() - started, 2)
    say(f"kept {len(report.kept)} of {report.tried} mutants tried in {report.seconds:.1f} s -> {out}")
    return report


def _baseline(slot: _Slot, test_cmd: str, say) -> tuple[list[str], float]:
    run = run_tests(test_cmd, slot.ws.path, scratch=slot.scratch, timeout_s=900, log=slot.scratch / "tests.log")
    if run.timed_out:
        raise GeneratorError(f"the tests did not finish within 900 s: {test_cmd}")
    if not run.statuses:
        raise GeneratorError(f"`{test_cmd}` reported no tests (exit {run.exit_code}); pass --test-cmd")
    failing = sorted(i for i, s in run.statuses.items() if s not in PASSING and s != "skipped")
    if failing:
        raise GeneratorError(f"the tests must pass first: {len(failing)} fail, e.g. {failing[0]}")
    passing = sorted(i for i, s in run.statuses.items() if s in PASSING)
    say(f"baseline: {len(passing)} tests pass in {run.seconds:.1f} s")
    return passing, max(30.0, 5 * run.seconds)


def _unique(mutations: list[Mutation], root: Path) -> list[Mutation]:
    """Drop mutations whose file comes out the same as an earlier one's."""
    seen, kept, sources = set(), [], {}
    for mutation in mutations:
        source = sources.setdefault(mutation.path, (root / mutation.path).read_bytes())
        digest = hashlib.sha1(mutation.path.encode() + mutation.apply(source)).digest()
        if digest not in seen:
            seen.add(digest)
            kept.append(mutation)
    return kept


def _search(todo, slots, test_cmd, passing, limit_s, n, max_fail, report, say) -> list[_Outcome]:
    free: queue.Queue[_Slot] = queue.Queue()
    for slot in slots:
        free.put(slot)

    def job(mutation: Mutation) -> _Outcome:
        slot = free.get()
        try:
            return _evaluate(mutation, slot, test_cmd, passing, limit_s)
        finally:
            free.put(slot)

    kept: list[_Outcome] = []
    in_flight: dict[int, Future[_Outcome]] = {}
    next_index = 0
    with ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="mutant") as pool:
        while len(kept) < n and report.tried < len(todo):
            while len(in_flight) < len(slots) and next_index < len(todo):
                in_flight[next_index] = pool.submit(job, todo[next_index])
                next_index += 1
            outcome = in_flight.pop(report.tried).result()  # decide in candidate order: deterministic
            report.tried += 1
            if not outcome.timed_out and 1 <= len(outcome.failing) <= max_fail:
                kept.append(outcome)
                say(f"  kept {outcome.mutation.kind} mutant: {len(outcome.failing)} failing test(s)")
        for future in in_flight.values():
            future.cancel()
    return kept


def _evaluate(mutation: Mutation, slot: _Slot, test_cmd: str, passing: list[str], limit_s: float) -> _Outcome:
    path = slot.ws.path / mutation.path
    original = path.read_bytes()
    path.write_bytes(mutation.apply(original))
    try:
        run = run_tests(test_cmd, slot.ws.path, scratch=slot.scratch, timeout_s=limit_s, log=slot.scratch / "tests.log")
        failing = [i for i in passing if run.statuses.get(i) not in PASSING]
        texts = failure_texts(run.junit, slot.ws.path) if failing and len(failing) <= 50 else {}
        # buggy -> fixed, with a/ and b/ the right way round
        gold = git(slot.ws.path, "diff", "-R", "--src-prefix=b/", "--dst-prefix=a/", "--", mutation.path)
    finally:
        path.write_bytes(original)
    texts = {k: v.replace(str(slot.ws.path) + "/", "") for k, v in texts.items()}
    return _Outcome(mutation, failing, texts, gold, run.timed_out)


def _instance(
    outcome: _Outcome, repo: Path, base_commit: str | None, test_cmd: str, passing: list[str], seed: int
) -> Instance:
    m = outcome.mutation
    failing = sorted(outcome.failing)
    return Instance(
        instance_id=f"{_slug(repo.name)}-{m.kind}-{m.key[:6]}",
        problem_statement=problem_statement(failing, outcome.texts, test_cmd, hide=m.path),
        repo_path=str(repo),
        base_commit=base_commit,
        base_has_fix=True,
        FAIL_TO_PASS=failing,
        PASS_TO_PASS=[i for i in passing if i not in failing],
        test_cmd=test_cmd,
        patch=outcome.gold,
        kind=m.kind,
        created_by=f"fastcode eval make-tasks --seed {seed}",
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "repo"


def _error_lines(text: str, hide: str) -> list[str]:
    """The `E ...` lines of a pytest failure (the assertion and its explanation); lines naming the changed file
    are left out, so the statement never points at the fix."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.startswith("E ") and hide not in ln]
    if not lines:  # no assertion lines: the last line that is not a `path:line:` location
        rest = [ln.strip() for ln in text.splitlines() if ln.strip() and hide not in ln]
        rest = [ln for ln in rest if not re.match(r"^\S+:\d+:", ln)]
        lines = [f"E   {rest[-1]}"] if rest else []
    return [_ADDRESS.sub("0x…", ln) for ln in lines[:MAX_LINES_PER_TEST]]


def problem_statement(failing: list[str], texts: dict[str, str], test_cmd: str, hide: str) -> str:
    """A user-style report built from the failures; `hide` (the mutated file) never appears in it."""
    count = len(failing)
    title = f"{failing[0].split('::')[-1]} fails" + (f" (and {count - 1} more)" if count > 1 else "")
    parts = [title, "", "After the latest changes, these tests fail; the rest of the suite still passes:", ""]
    parts += [f"- {test_id}" for test_id in failing]
    for test_id in failing[:MAX_SHOWN_TESTS]:
        lines = _error_lines(texts.get(test_id, ""), hide)
        if lines:
            parts += ["", f"`{test_cmd} {test_id}` reports:", "", "```", *lines, "```"]
    parts += ["", "Please fix the code so that these tests pass again, without changing the tests."]
    return "\n".join(parts) + "\n"
