"""search: ripgrep output format, globs, .gitignore, limits, errors, overlapping calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fastcode.tools import ToolContext, ToolError, execute


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import os\n\ndef needle():\n    return 'needle'\n")
    (root / "src" / "app.js").write_text("const needle = 1;\n")
    (root / "README.md").write_text("a needle in a haystack\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("needle = 'generated'\n")
    (root / "debug.log").write_text("needle\n")
    return root


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    return ToolContext(root=repo)


async def search(ctx: ToolContext, **arguments: object) -> str:
    return (await execute("search", json.dumps(arguments), ctx)).output


async def test_matches_are_path_line_text_sorted_and_skip_gitignored(ctx: ToolContext) -> None:
    assert await search(ctx, pattern="needle") == (
        "README.md:1: a needle in a haystack\n"
        "src/app.js:1: const needle = 1;\n"
        "src/app.py:3: def needle():\n"
        "src/app.py:4:     return 'needle'"
    )


async def test_glob_and_path(ctx: ToolContext) -> None:
    assert await search(ctx, pattern="needle", glob="*.js") == "src/app.js:1: const needle = 1;"
    assert await search(ctx, pattern="needle", path="src", glob="!*.py") == "src/app.js:1: const needle = 1;"
    assert await search(ctx, pattern=r"def \w+\(", path="src/app.py") == "src/app.py:3: def needle():"


async def test_max_results_cuts_with_a_note(ctx: ToolContext) -> None:
    out = await search(ctx, pattern="needle", max_results=2)
    assert out.splitlines() == [
        "README.md:1: a needle in a haystack",
        "src/app.js:1: const needle = 1;",
        "[... stopped at 2 matches; narrow the pattern, path or glob, or raise max_results]",
    ]


async def test_no_matches(ctx: ToolContext) -> None:
    assert await search(ctx, pattern="absent_word") == "no matches for 'absent_word' in ."
    assert await search(ctx, pattern="-x", glob="*.md") == "no matches for '-x' in . (glob '*.md')"


async def test_invalid_regex_is_a_tool_error_with_rg_message(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"invalid search pattern: .*regex parse error") as err:
        await search(ctx, pattern="foo(")
    assert "unclosed group" in str(err.value)


async def test_bad_paths(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="outside the repository root"):
        await search(ctx, pattern="x", path="../")
    with pytest.raises(ToolError, match="no such file or directory: nope"):
        await search(ctx, pattern="x", path="nope")


async def test_long_lines_are_cut(repo: Path, ctx: ToolContext) -> None:
    (repo / "min.js").write_text("var needle=" + "x" * 5000 + "\n")
    out = await search(ctx, pattern="needle", glob="min.js")
    assert out.startswith("min.js:1: var needle=xxx")
    assert out.endswith(" [...]")
    assert len(out) < 400


async def test_searches_overlap(ctx: ToolContext) -> None:
    results = await asyncio.gather(*(search(ctx, pattern="needle", glob="*.js") for _ in range(8)))
    assert set(results) == {"src/app.js:1: const needle = 1;"}
