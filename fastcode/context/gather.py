"""Context gathered before the first model call, all sources at once, each with its own deadline.

Sources: git status + uncommitted diff; the tree-sitter repo map; ripgrep for the task's identifiers, file names and
quoted strings; and, when there is a test command, one test run whose failure output names the files and functions
to read. The result is one text block in the first user message — what a naive agent needs 3-5 tool calls to find.
Each source is a phase in the trace (`gather.git`, `gather.map`, …) inside the `gather` phase.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastcode.context.repomap import DefinitionCache, build_repo_map, changed_files, task_terms
from fastcode.context.testcmd import run_tests_traced
from fastcode.core.events import PhaseFinished, PhaseStarted
from fastcode.core.paths import own_git_environ, own_program
from fastcode.core.secrets import mask
from fastcode.tools.base import inside_repo, relative
from fastcode.tools.files import numbered, split_lines
from fastcode.tools.shell import run_command

if TYPE_CHECKING:
    from fastcode.core.config import ContextSection
    from fastcode.core.emitter import Emitter

TEST_OUTPUT_CHARS = 4000
FILE_LINES = 160
_FILE_REF = re.compile(r"(?:File \"([^\"]+)\", line (\d+)|^([\w./-]+\.\w+):(\d+):)", re.MULTILINE)
_MENTIONED_FILE = re.compile(r"[\w./-]+\.(?:py|js|ts|tsx|go|rs|java|rb|c|h|cpp|hpp|cs|php|kt|swift)\b")
_QUOTED = re.compile(r"[\"'`]([^\"'`\n]{3,80})[\"'`]")
_IDENT = re.compile(r"\b(?:[a-z]+_[a-z0-9_]+|[A-Z][a-z0-9]+[A-Z]\w*|[a-z]+[A-Z]\w*)\b")
_CALLED = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+::.+?)(?: - .*)?$", re.MULTILINE)
_IMPORTED = re.compile(r"\bimport\s+([A-Za-z_]\w*)")
_LOCATION = re.compile(r"^[\w./-]+\.\w+:\d+:")
_DURATION = re.compile(r"(\b(?:passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected)\b[^\n]*?) in "
                       r"\d+(?:\.\d+)?s\b")  # fmt: skip
"""pytest's "1 failed, 2 passed in 0.06s": the time differs on every run, and would break the prompt's byte-stable
prefix from one run to the next (the server's cache of the last run's prompt)."""
_ASSERT_EQ = re.compile(r"^assert (.+?) == (.+)$")
_MORE_DIFF = re.compile(r"^E\s+Use -v+ to get (?:more|the full) diff")
_BUILTINS = {"assert", "print", "len", "range", "list", "dict", "set", "str", "int", "float", "isinstance", "raises"}


class Section:
    """One piece of context. `priority`: 0 the failing assertion and traceback, 1 the code the failure names, 2 the
    rest, 3 what repeats the others at length (the whole test output); the budget fills in that order.
    `keep_tail`: when cut to fit, keep the end (test output) not the start."""

    def __init__(self, title: str, body: str, priority: int = 2, *, keep_tail: bool = False) -> None:
        self.title, self.body, self.priority, self.keep_tail = title, body, priority, keep_tail

    def render(self) -> str:
        return f"## {self.title}\n{self.body.rstrip()}"


@dataclass
class Gathered:
    """What gathering found: the sections, most valuable first, and what its test run said."""

    sections: list[Section] = field(default_factory=list)
    tests_failing: bool | None = None
    """Whether the gathered test run failed (None: no test run)."""
    failing_tests: list[str] = field(default_factory=list)
    """pytest node ids that failed in it."""


async def _timed(name: str, emit: Emitter, deadline_s: float, work: Awaitable[list[Section]]) -> list[Section]:
    emit(PhaseStarted, name=name)
    started = time.perf_counter()
    try:
        sections = await asyncio.wait_for(work, deadline_s)
        ok, detail = True, f"{len(sections)} sections"
    except TimeoutError:
        sections, ok, detail = [], False, f"timed out after {deadline_s:g} s"
    except Exception as exc:  # a source failing must not stop the run
        sections, ok, detail = [], False, f"{type(exc).__name__}: {exc}"
    emit(PhaseFinished, name=name, ms=round((time.perf_counter() - started) * 1000, 2), ok=ok, detail=detail)
    return sections


async def _git(root: Path) -> list[Section]:
    if not (root / ".git").exists():
        return []
    git_env = own_git_environ({})  # a planted submodule's hooks or fsmonitor never run
    git = shlex.quote(own_program("git") or "git")
    diff_stat = f"{git} diff --stat HEAD -- . ':(exclude).fastcode' 2>/dev/null"
    (_, status), (_, diff) = await asyncio.gather(
        run_command(f"{git} status --short --branch", root, timeout_s=10, max_chars=3000, env=git_env),
        run_command(diff_stat, root, timeout_s=10, max_chars=2000, env=git_env),
    )
    # .fastcode/ is excluded from git by the checkpointer, which may not have run yet: never show it.
    status = "\n".join(line for line in status.splitlines() if ".fastcode/" not in line)
    return [Section("git status", f"{status}\n{diff if diff != '(no output)' else ''}")]


async def _search(root: Path, task: str) -> list[Section]:
    from fastcode.tools import execute
    from fastcode.tools.base import ToolContext, ToolError

    wanted = [*dict.fromkeys([*_QUOTED.findall(task), *_IDENT.findall(task)])][:6]
    ctx = ToolContext(root, max_output_chars=1500)

    async def one(term: str) -> str:
        try:
            result = await execute("search", json.dumps({"pattern": re.escape(term), "max_results": 8}), ctx)
        except ToolError:
            return ""
        return f"`{term}`:\n{result.output}" if not result.output.startswith("no matches") else ""

    hits = [h for h in await asyncio.gather(*(one(t) for t in wanted)) if h]
    return [Section("search hits for the task's identifiers", "\n".join(hits))] if hits else []


EXCERPT_HEADER = re.compile(r"^### (\S+) \(lines (\d+)-(\d+)\)$", re.MULTILINE)
"""The header `_file_excerpt` gives an excerpt: path, first and last line."""


def _file_excerpt(root: Path, rel: str, around: tuple[int, int] | None = None) -> str:
    lines = split_lines((root / rel).read_text(encoding="utf-8", errors="replace"))
    first, last = (1, len(lines)) if around is None else around
    if around is None and len(lines) > FILE_LINES:
        last = FILE_LINES
    body = "\n".join(numbered(lines[first - 1 : last], first))
    more = f"\n[... {len(lines)} lines in all]" if last < len(lines) else ""
    return f"### {rel} (lines {first}-{last})\n```\n{body}{more}\n```"


def _repo_file(root: Path, path: str) -> str | None:
    """`path` (from test output) relative to the repository, when it is a file inside it (the tools' path rules:
    `../x.py` and symlinks that lead out are not), else None."""
    target = inside_repo(root, path)
    if target is None or not target.is_file():
        return None
    rel = relative(root, target)
    return rel if "site-packages" not in rel else None


async def _tests(root: Path, command: str, timeout_s: float, emit: Emitter, found: Gathered) -> list[Section]:
    result = await run_tests_traced(command, root, emit, timeout_s=timeout_s)
    found.tests_failing = not result.passed
    steady = without_durations(result.output)
    output = steady[-TEST_OUTPUT_CHARS:]
    title = f"test run: `{command}` exited {result.exit_code}"
    if result.passed:  # passing output says little: the rest of the context comes first
        return [Section(title, f"```\n{output[-TEST_OUTPUT_CHARS // 4 :]}\n```", 2, keep_tail=True)]
    found.failing_tests = failing_node_ids(result.output)
    sections = [
        Section(
            f"{title}: the failure",
            f"```\n{condense_failure(steady)}\n```",
            0,
            keep_tail=True,
        ),
        Section(f"{title}: full output (end)", f"```\n{output}\n```", 3, keep_tail=True),
    ]
    frames = [(f, int(m.group(2) or m.group(4))) for m in _FILE_REF.finditer(output)
              if (f := _repo_file(root, m.group(1) or m.group(3)))]  # fmt: skip
    called = {
        name for line in output.splitlines() if line.lstrip().startswith((">", "E ")) for name in _CALLED.findall(line)
    }
    files = list(dict.fromkeys(f for f, _ in frames))
    named = await asyncio.to_thread(_definitions_named, root, called - _BUILTINS, frames)
    if named:
        sections.append(Section("code named by the failure", "\n\n".join(named), 1))
    excerpts = [_file_excerpt(root, rel) for rel in files][:4]
    if excerpts:
        sections.append(Section("files in the traceback", "\n\n".join(excerpts), 2))
    return sections


def without_durations(output: str) -> str:
    """Test output without the run's duration in its summary lines ("1 failed in 0.06s" -> "1 failed")."""
    return _DURATION.sub(r"\1", output)


def failing_node_ids(output: str) -> list[str]:
    """pytest node ids of the failed tests (`FAILED tests/test_x.py::test_y - ...` summary lines)."""
    ids = [m.group(1) for m in _FAILED.finditer(output)]
    return list(dict.fromkeys(ids))[:20]


def condense_failure(output: str, limit: int = 60) -> str:
    """The failing assertion and its traceback, without the noise: pytest's section headers, the source lines it
    marks (`>`), error lines (`E `), `file:line:` locations and the summary lines; other runners: the last lines."""
    keep = [
        line.rstrip()
        for line in output.splitlines()
        if line.startswith(("_", "E ", ">", "FAILED", "ERROR")) or _LOCATION.match(line) or line.startswith("    def ")
    ]
    keep = [line for line in keep if line.strip("_ ") or not line.startswith("_")]
    if len(keep) < 2:
        keep = output.rstrip().splitlines()[-limit:]
    return "\n".join(_spelled_out(keep)[-limit:])


def _spelled_out(lines: list[str]) -> list[str]:
    """pytest's `E  assert [3, 5] == [3, 5, 7]` under `>  assert moving_sum([1, 2, 3, 4], 2) == [3, 5, 7]` says
    which side is the result only to a reader who lines the two up (small models take the expected value for the
    result); where one side is a call and the other a literal, one more line says it in words. pytest's "Use -v to
    get more diff" and empty `E` lines go."""
    out: list[str] = []
    source: tuple[str, str] | None = None
    for line in lines:
        if line.strip() == "E" or _MORE_DIFF.match(line):
            continue
        out.append(line)
        if line.startswith(">"):
            source = _comparison(line[1:])
        elif line.startswith("E ") and source is not None:
            written, shown, source = source, _comparison(line[2:]), None
            if shown is None:
                continue
            for (call, literal), (got, wanted) in ((written, shown), (written[::-1], shown[::-1])):
                if "(" in call and literal == wanted and got != call:
                    out.append(f"E       {call} returned {got}; the test expects {wanted}")
                    break
    return out


def _comparison(text: str) -> tuple[str, str] | None:
    """The two sides of `assert LEFT == RIGHT` (exactly one `==`), else None."""
    match = _ASSERT_EQ.match(text.strip())
    if match is None or " == " in match.group(1) or " == " in match.group(2):
        return None
    return match.group(1).strip(), match.group(2).strip()


def _definitions_named(root: Path, names: set[str], frames: list[tuple[str, int]]) -> list[str]:
    """Excerpts of the functions the failure names: the definitions enclosing each traceback frame in the repo, then
    the functions and methods called on the failing lines (found with rg, then tree-sitter)."""
    import subprocess

    from fastcode.tools.search import rg_binary

    cache, excerpts, seen = DefinitionCache(root), [], set()

    def add(rel: str, first: int, last: int) -> None:
        if (rel, first) not in seen and last - first < FILE_LINES:
            seen.add((rel, first))
            excerpts.append(_file_excerpt(root, rel, (first, last)))

    for rel, line in frames:
        enclosing = [d for d in cache.get(root, rel) if d.kind in ("function", "method")]
        enclosing = [d for d in enclosing if d.start_line <= line <= d.end_line]
        if enclosing:
            inner = max(enclosing, key=lambda d: d.start_line)
            add(rel, inner.start_line, inner.end_line)
    if names:
        pattern = [arg for name in sorted(names) for arg in ("-e", name)]
        command = [rg_binary(), "--files-with-matches", "-w", "-F", *pattern, "--", "."]
        run = subprocess.run(command, cwd=root, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        for rel in sorted(path.removeprefix("./") for path in run.stdout.split())[:50]:
            for d in cache.get(root, rel):
                if d.name in names and d.kind in ("function", "method"):
                    add(rel, d.start_line, d.end_line)
    cache.save()
    return excerpts[:8]


async def _named(root: Path, task: str) -> list[Section]:
    """The functions the task names (`wrap()`, `moving_sum`, "from x import parse_date"): their bodies."""
    quoted = {q for q in _QUOTED.findall(task) if q.isidentifier()}
    names = (set(_CALLED.findall(task)) | set(_IDENT.findall(task)) | quoted | set(_IMPORTED.findall(task))) - _BUILTINS
    names = {name for name in names if len(name) > 2}
    named = await asyncio.to_thread(_definitions_named, root, names, []) if names else []
    return [Section("code the task names", "\n\n".join(named), 1)] if named else []


async def _map(root: Path, task: str, budget_tokens: int) -> list[Section]:
    mentioned = set(_MENTIONED_FILE.findall(task))
    changed = await asyncio.to_thread(changed_files, root)
    text = await asyncio.to_thread(
        build_repo_map,
        root,
        task,
        budget_tokens=budget_tokens,
        mentioned=mentioned,
        changed=changed,
    )
    return [Section("repo map (definitions of the most relevant files)", text)] if text else []


_ABOUT_TESTS = re.compile(
    r"\b(tests?|testing|pytest|failing|fails?|failed|failures?|fix(es|ed)?|broken|bugs?|regressions?|crash(es)?|"
    r"errors?|ci)\b",
    re.IGNORECASE,
)


def is_about_tests(task: str) -> bool:
    """The task speaks of failing tests or a bug to fix: only then does gathering run the tests (they run the
    repository's own code; "add a docstring to sub" has no need of it)."""
    return bool(_ABOUT_TESTS.search(task))


async def gather_context(root: Path, task: str, settings: ContextSection, test_command: str, emit: Emitter) -> Gathered:
    """Run every source at once (the test run only with `test_command` and `context.run_tests`); return their
    sections, most valuable first, and what the test run found (nothing when `context.enabled` is off)."""
    found = Gathered()
    if not settings.enabled:
        return found
    emit(PhaseStarted, name="gather")
    started = time.perf_counter()
    sources: list[tuple[str, Callable[[], Awaitable[list[Section]]]]] = [
        ("gather.git", lambda: _git(root)),
        ("gather.map", lambda: _map(root, task, settings.repo_map_tokens)),
        ("gather.search", lambda: _search(root, task)),
        ("gather.named", lambda: _named(root, task)),
    ]
    if settings.run_tests and test_command:
        sources.append(("gather.tests", lambda: _tests(root, test_command, settings.deadline_s, emit, found)))
    results = await asyncio.gather(*(_timed(name, emit, settings.deadline_s, make()) for name, make in sources))
    order = {"gather.tests": 0, "gather.named": 1, "gather.search": 2, "gather.git": 3, "gather.map": 4}
    ranked = sorted(zip((name for name, _ in sources), results, strict=True), key=lambda item: order[item[0]])
    sections = sorted((section for _, found in ranked for section in found), key=lambda section: section.priority)
    chars = sum(len(section.body) for section in sections)
    emit(
        PhaseFinished,
        name="gather",
        ms=round((time.perf_counter() - started) * 1000, 2),
        detail=f"{chars} chars, {len(sections)} sections, {len(sources)} sources, {len(task_terms(task))} task terms",
    )
    # a key in an un-ignored .env, shown by a search hit or an excerpt, must not reach the prompt or the trace
    found.sections = [Section(s.title, mask(s.body), s.priority, keep_tail=s.keep_tail) for s in unrepeated(sections)]
    return found


def unrepeated(sections: list[Section]) -> list[Section]:
    """`sections` (most valuable first) without the code excerpts an earlier section already shows (same file, lines
    within a range shown before); a section left with none is dropped. The function a failure names is often the
    one the task names too: shown twice, it cost the first call ~100 tokens (~1.5 s of prefill on a CPU)."""
    shown: dict[str, list[tuple[int, int]]] = {}
    kept: list[Section] = []
    for section in sections:
        if not EXCERPT_HEADER.match(section.body):
            kept.append(section)
            continue
        fresh = []
        for excerpt in re.split(r"\n\n(?=### )", section.body):
            if (header := EXCERPT_HEADER.match(excerpt)) is not None:
                path, first, last = header.group(1), int(header.group(2)), int(header.group(3))
                if any(a <= first and last <= b for a, b in shown.get(path, [])):
                    continue
                shown.setdefault(path, []).append((first, last))
            fresh.append(excerpt)
        if fresh:
            kept.append(Section(section.title, "\n\n".join(fresh), section.priority, keep_tail=section.keep_tail))
    return kept
