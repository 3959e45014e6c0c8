"""Edit first: when the gathered context shows the code involved, a constrained model's first replies may only edit
those source files; the tests judge each reply, and a rejected one is taken back (its files put back as they were)
so that another sample can be drawn from the same cached prompt; a sample that repeats an earlier one is not tested
again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastcode.agent.router import call_signature
from fastcode.context.gather import EXCERPT_HEADER
from fastcode.core.events import ToolCallSpec
from fastcode.tools.base import ToolError, inside_repo, parse_arguments
from fastcode.tools.files import atomic_write, split_lines


class Attempt:
    """Records each file's content before its first write in this attempt; `revert` puts them all back."""

    def __init__(self) -> None:
        self.originals: dict[Path, bytes | None] = {}

    def before_write(self, path: Path | None) -> None:
        if path is not None and path not in self.originals:
            self.originals[path] = path.read_bytes() if path.is_file() else None

    def revert(self, root: Path) -> list[str]:
        """Put every written file back as it was (delete the ones the attempt created); the paths, relative. A path
        that now leads out of `root` (the tests ran in between and may have swapped a folder for a symlink) is left
        alone: fastcode runs unconfined and must not write where it leads."""
        base = root.resolve()
        inside = {path: path.relative_to(base).as_posix() for path in self.originals if path.is_relative_to(base)}
        for path, relative in inside.items():
            if inside_repo(base, relative) != path.resolve():
                continue
            if (data := self.originals[path]) is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data)
        changed = sorted(inside.values())
        self.originals.clear()
        return changed


EDIT_ONLY = frozenset({"edit_file", "finish"})
"""What an edit-first reply may call: the code is in the prompt, the tests judge the edit."""

_QUESTION = re.compile(
    r"^\s*(what|why|how|where|which|who|when|is|are|does|do|can|explain|describe|summari[sz]e|show|list|tell|review|"
    r"find)\b|\?\s*$",
    re.IGNORECASE,
)
WINDOW_LINES = 3
"""A one-edit candidate's `old` is a run of at most this many lines shown in the prompt."""
MAX_CHOICES = 300
"""Runs offered per file at most (the grammar stays small)."""
_TEST_FILE = re.compile(
    r"(^|/)(tests?/|spec/|__tests__/|test_[^/]*$|[^/]*_test\.\w+$|[^/]*\.(test|spec)\.\w+$|conftest\.py$|tests\.py$)"
)


def source_paths(context: str) -> list[str]:
    """The non-test files whose code the context shows: what an edit-first reply may edit."""
    return [
        path
        for path in dict.fromkeys(path for path, _, _ in EXCERPT_HEADER.findall(context))
        if not _TEST_FILE.search(path)
    ]


def old_choices(root: Path, context: str, paths: list[str]) -> dict[str, list[str]]:
    """For each of `paths` the context shows code of: the runs of 1..WINDOW_LINES shown lines (neither end blank,
    each found exactly once in the file) a one-edit candidate's `old` may be; a file that cannot be read as the
    context showed it gets an empty list (any `old`)."""
    shown: dict[str, set[int]] = {path: set() for path in paths}
    for path, first, last in EXCERPT_HEADER.findall(context):
        if path in shown:
            shown[path].update(range(int(first), int(last) + 1))
    choices: dict[str, list[str]] = {}
    for path, numbers in shown.items():
        target = inside_repo(root, path)
        try:
            text = target.read_text(encoding="utf-8") if target is not None else ""
        except (OSError, UnicodeDecodeError):
            text = ""
        lines, found = split_lines(text), []
        for start in sorted(numbers):
            for size in range(1, WINDOW_LINES + 1):
                span = lines[start - 1 : start - 1 + size]
                if len(span) < size or any(n not in numbers for n in range(start, start + size)):
                    break
                old = "\n".join(span)
                if span[0].strip() and span[-1].strip() and old not in found and text.count(old) == 1:
                    found.append(old)
        choices[path] = found[:MAX_CHOICES]
    return choices


def is_question(task: str) -> bool:
    """The task asks about the code rather than for a change to it ("explain parse_date", "why does x fail?")."""
    return bool(_QUESTION.search(task))


def candidate(calls: list[ToolCallSpec]) -> str:
    """What a reply would change, comparable across samples: its calls but `finish` (the summary's wording does not
    change the fix), each with its arguments as the tool reads them (an argument left at its default, such as
    `"replace_all": false`, is the same edit as one left out), else as its `call_signature`."""
    return "\n".join(_meaning(c) for c in calls if c.name != "finish")


def _meaning(call: ToolCallSpec) -> str:
    try:
        arguments = parse_arguments(call.name, call.arguments)[1].model_dump(mode="json", exclude_defaults=True)
    except ToolError:
        return call_signature(call)
    return f"{call.name} {json.dumps(arguments, sort_keys=True)}"
