"""edit_file forgives what small models get wrong when they copy `old`: line-number prefixes and indentation."""

from __future__ import annotations

import json

from fastcode.tools import ToolContext, ToolError, execute

SOURCE = (
    "def f(values, window):\n    out = []\n    for i in range(len(values) - window):\n        out.append(i)\n"
    "    return out\n"
)


async def _edit(tmp_path, old: str, new: str) -> str:
    (tmp_path / "m.py").write_text(SOURCE)
    result = await execute("edit_file", json.dumps({"path": "m.py", "old": old, "new": new}), ToolContext(tmp_path))
    return result.output


async def test_line_number_prefixes_are_removed(tmp_path) -> None:
    out = await _edit(
        tmp_path,
        "   3|     for i in range(len(values) - window):",
        "   3|     for i in range(len(values) - window + 1):",
    )
    assert "line-number prefixes removed" in out
    assert "    for i in range(len(values) - window + 1):\n" in (tmp_path / "m.py").read_text()


async def test_other_indentation_is_matched_and_new_is_reindented(tmp_path) -> None:
    old = "for i in range(len(values) - window):\n    out.append(i)"
    new = "for i in range(len(values) - window + 1):\n    out.append(i)"
    out = await _edit(tmp_path, old, new)
    assert "ignoring indentation" in out
    text = (tmp_path / "m.py").read_text()
    assert "    for i in range(len(values) - window + 1):\n        out.append(i)\n" in text


async def test_ambiguous_loose_matches_are_refused(tmp_path) -> None:
    (tmp_path / "m.py").write_text("if a:\n    x = 1\nif b:\n        x = 1\n")
    try:
        await execute("edit_file", json.dumps({"path": "m.py", "old": "x = 1 ", "new": "x = 2"}), ToolContext(tmp_path))
    except ToolError as exc:
        assert "not found" in str(exc)
    else:
        raise AssertionError("an ambiguous loose match must not edit")
    assert (tmp_path / "m.py").read_text() == "if a:\n    x = 1\nif b:\n        x = 1\n"


async def test_an_old_that_skipped_a_line_still_edits_the_changed_line(tmp_path) -> None:
    (tmp_path / "m.py").write_text(
        'def add(a, b):\n    """Sum."""\n    return a - b\n\n\ndef sub(a, b):\n    return a - b + 0\n'
    )
    old, new = "def add(a, b):\n    return a - b", "def add(a, b):\n    return a + b"
    result = await execute("edit_file", json.dumps({"path": "m.py", "old": old, "new": new}), ToolContext(tmp_path))
    assert "only the changed lines" in result.output
    assert (tmp_path / "m.py").read_text().startswith('def add(a, b):\n    """Sum."""\n    return a + b\n')
