"""Forgiving matches for `edit_file`, for the mistakes small models make when they copy `old` from what they read.

Tried in order, only when the exact text is not found, and only when the result is unique in the file:
1. `old` (and `new`) copied with the line-number prefixes that `read_file` shows (`  12| `): the prefixes go.
2. `old` whose lines match the file's with other indentation or trailing spaces: the file's lines are used, and
   `new` is re-indented by the same shift.
3. `old` that left out lines around the change (a skipped docstring): when `old` and `new` differ in one block of
   lines, that block occurs once in the file, and one of `old`'s unchanged lines stands within a few lines of it,
   only the block is replaced.

Each returns the exact (old, new) to replace: the caller still requires `old` to occur exactly once.
"""

from __future__ import annotations

import difflib
import re

_NUMBERED = re.compile(r"^\s*\d+\| ?")
NEAR = 6
"""How close (in lines) one of `old`'s unchanged lines must stand to the changed block it anchors."""


def strip_line_numbers(text: str) -> str | None:
    """`text` without `  12| ` prefixes when every non-blank line has one, else None."""
    lines = text.split("\n")
    if not any(line.strip() for line in lines) or not all(_NUMBERED.match(line) for line in lines if line.strip()):
        return None
    return "\n".join(_NUMBERED.sub("", line, count=1) for line in lines)


def _strip_each(text: str) -> str:
    """Every line's `  12| ` prefix removed, where it has one (a line the model added may have none)."""
    return "\n".join(_NUMBERED.sub("", line, count=1) for line in text.split("\n"))


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


LOOSE_MAX_CHARS = 2_000_000
"""Line-by-line matching is skipped in bigger files: a pass over millions of lines costs seconds."""


def _hits(lines: list[str], wanted: list[str], enough: int = 2) -> list[int]:
    """Where `wanted` starts in `lines` (compared stripped), at most `enough` of them: only lines equal to its
    first line are looked at further, so a huge file costs one pass."""
    hits: list[int] = []
    first, last = wanted[0], len(lines) - len(wanted)
    for i, line in enumerate(lines):
        if i > last or len(hits) >= enough:
            break
        if line.strip() == first and all(lines[i + k].strip() == wanted[k] for k in range(1, len(wanted))):
            hits.append(i)
    return hits


def loose_match(text: str, old: str, new: str) -> tuple[str, str] | None:
    """(old, new) rewritten to the file's exact text when `old`'s lines occur exactly once in `text` up to
    indentation and trailing whitespace — and that exact text occurs once too; None otherwise."""
    wanted = [line.strip() for line in old.strip("\n").split("\n")]
    if not any(wanted) or len(text) > LOOSE_MAX_CHARS:
        return None
    lines = text.split("\n")
    hits = _hits(lines, wanted)
    if len(hits) != 1:
        return None
    start, end = hits[0], hits[0] + len(wanted)
    found = lines[start:end]
    first_old = next(line for line in old.strip("\n").split("\n") if line.strip())
    first_file = next(line for line in found if line.strip())
    have, want = _indent(first_old), _indent(first_file)
    shifted = []
    for line in new.strip("\n").split("\n"):
        if line.strip() and line.startswith(have):
            line = want + line[len(have) :]
        elif line.strip() and not have:
            line = want + line
        shifted.append(line)
    # The caller replaces the first occurrence of the exact text: widen both with the file's neighbouring lines
    # until this one is the only occurrence.
    for grow in range(0, 11):
        before, after = lines[max(0, start - grow) : start], lines[end : end + grow]
        exact = "\n".join([*before, *found, *after])
        if text.count(exact) == 1:
            return exact, "\n".join([*before, *shifted, *after])
    return None


def changed_block(old: str, new: str) -> tuple[str, str, list[str]] | None:
    """The one block of lines in which `old` and `new` differ, and `old`'s unchanged lines; None when they differ in
    several places, the change only inserts lines, or the block is too slight to find safely."""
    before, after = old.split("\n"), new.split("\n")
    ops = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    changes = [op for op in ops if op[0] != "equal"]
    if len(changes) != 1 or changes[0][1] == changes[0][2]:
        return None
    _, i1, i2, j1, j2 = changes[0]
    block = "\n".join(before[i1:i2])
    if len(block.strip()) < 8:
        return None
    context = [line.strip() for line in before[:i1] + before[i2:] if line.strip()]
    return block, "\n".join(after[j1:j2]), context


def _anchored(text: str, block: str, context: list[str]) -> bool:
    """One of `old`'s unchanged lines stands within NEAR lines of the block's only occurrence."""
    at = text.find(block.strip("\n").split("\n")[0].strip())
    if at == -1 or not context:
        return False
    lines = text.split("\n")
    row = text.count("\n", 0, at)
    nearby = {line.strip() for line in lines[max(0, row - NEAR) : row + NEAR + 1]}
    return any(line in nearby for line in context)


def forgiving(text: str, old: str, new: str) -> tuple[str, str, str] | None:
    """(old, new, what was forgiven), where `old` occurs exactly once in `text`; or None."""
    stripped = strip_line_numbers(old)
    if stripped is not None:
        new = _strip_each(new)
        if text.count(stripped) == 1:
            return stripped, new, "line-number prefixes removed"
        old = stripped
    loose = loose_match(text, old, new)
    if loose is not None:
        return loose[0], loose[1], "matched ignoring indentation and trailing spaces"
    core = changed_block(old, new)
    if core is None:
        return None
    block, replacement, context = core
    candidate = (block, replacement) if text.count(block) == 1 else loose_match(text, block, replacement)
    if candidate is not None and text.count(candidate[0]) == 1 and _anchored(text, candidate[0], context):
        return candidate[0], candidate[1], "only the changed lines were replaced"
    return None
