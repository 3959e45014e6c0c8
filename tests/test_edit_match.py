"""edit_file forgives what small models get wrong when they copy `old`: line-number prefixes and indentation."""

from __future__ import annotations

import json

import pytest

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


async def test_a_loose_match_edits_the_matching_line_not_an_earlier_substring(tmp_path) -> None:
    (tmp_path / "m.py").write_text("def f():\n    return x + 1\n\ndef g():\n  return x\n")
    await execute("edit_file", json.dumps({"path": "m.py", "old": "        return x", "new": "        return y"}),
                  ToolContext(tmp_path))  # fmt: skip
    assert (tmp_path / "m.py").read_text() == "def f():\n    return x + 1\n\ndef g():\n  return y\n"


async def test_new_lines_without_a_prefix_are_kept_and_prefixed_ones_stripped(tmp_path) -> None:
    (tmp_path / "m.py").write_text("a = 1\nb = 2\n")
    new = "  2| b = 2\nb2 = 5"
    await execute("edit_file", json.dumps({"path": "m.py", "old": "  2| b = 2", "new": new}), ToolContext(tmp_path))
    assert (tmp_path / "m.py").read_text() == "a = 1\nb = 2\nb2 = 5\n"


async def test_a_changed_block_needs_an_anchor_from_old(tmp_path) -> None:
    source = "def a():\n    return 0\n\n\ndef b():\n    return x * 2\n"
    (tmp_path / "m.py").write_text(source)
    old, new = "def c():\n    return x * 2", "def c():\n    return x * 3"  # def c() does not exist
    with pytest.raises(ToolError):
        await execute("edit_file", json.dumps({"path": "m.py", "old": old, "new": new}), ToolContext(tmp_path))
    assert (tmp_path / "m.py").read_text() == source
