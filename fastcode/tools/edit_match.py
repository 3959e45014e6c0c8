"""Forgiving matches for `edit_file`, for the mistakes small models make when they copy `old` from what they read.

Tried in order, only when the exact text is not found, and only when the result is unique:
1. `old` (and `new`) copied with the line-number prefixes that `read_file` shows (`  12| `): the prefixes go.
2. `old` whose lines match the file's with other indentation or trailing spaces: the file's lines are used, and
   `new` is re-indented by the same shift.
3. `old` that left out or garbled lines around the change (a skipped docstring): when `old` and `new` differ in
   one block of lines, and that block occurs once in the file, only it is replaced.
"""

from __future__ import annotations

import difflib
import re

_NUMBERED = re.compile(r"^\s*\d+\| ?")


def strip_line_numbers(text: str) -> str | None:
    """`text` without `  12| ` prefixes when every non-blank line has one, else None."""
    lines = text.split("\n")
    if not any(line.strip() for line in lines) or not all(_NUMBERED.match(line) for line in lines if line.strip()):
        return None
    return "\n".join(_NUMBERED.sub("", line, count=1) for line in lines)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def loose_match(text: str, old: str, new: str) -> tuple[str, str] | None:
    """(old, new) rewritten to the file's exact text when `old`'s lines occur exactly once in `text` up to
    indentation and trailing whitespace; None otherwise."""
    wanted = [line.strip() for line in old.strip("\n").split("\n")]
    if not any(wanted):
        return None
    lines = text.split("\n")
    hits = [
        i
        for i in range(len(lines) - len(wanted) + 1)
        if all(lines[i + k].strip() == wanted[k] for k in range(len(wanted)))
    ]
    if len(hits) != 1:
        return None
    found = lines[hits[0] : hits[0] + len(wanted)]
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
    return "\n".join(found), "\n".join(shifted)


def forgiving(text: str, old: str, new: str) -> tuple[str, str, str] | None:
    """(old, new, what was forgiven) that match `text` exactly once, or None."""
    stripped = strip_line_numbers(old)
    if stripped is not None and text.count(stripped) == 1:
        return stripped, strip_line_numbers(new) or new, "line-number prefixes removed"
    candidate = stripped if stripped is not None else old
    new = strip_line_numbers(new) or new if stripped is not None else new
    loose = loose_match(text, candidate, new)
    if loose is not None:
        return loose[0], loose[1], "matched ignoring indentation and trailing spaces"
    core = changed_block(candidate, new)
    if core is not None:
        if text.count(core[0]) == 1:
            return core[0], core[1], "only the changed lines were replaced"
        if (loose := loose_match(text, *core)) is not None:
            return loose[0], loose[1], "only the changed lines were replaced"
    return None


def changed_block(old: str, new: str) -> tuple[str, str] | None:
    """The one block of lines in which `old` and `new` differ, or None when they differ in several places, the
    change only inserts lines, or the block is too slight to find safely."""
    before, after = old.split("\n"), new.split("\n")
    changes = [
        op for op in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes() if op[0] != "equal"
    ]
    if len(changes) != 1 or changes[0][1] == changes[0][2]:
        return None
    _, i1, i2, j1, j2 = changes[0]
    block = "\n".join(before[i1:i2])
    if len(block.strip()) < 4:
        return None
    return block, "\n".join(after[j1:j2])
