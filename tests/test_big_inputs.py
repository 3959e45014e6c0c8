"""Issue 16's big inputs: tools stay linear and bounded on an 8 MB file and a single 20 MB line, and file work runs
off the event loop. (Timings and peak memory are figures for `fastcode bench --only big-inputs`, not asserted.)"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from fastcode.tools import ToolContext, ToolError, execute


@pytest.fixture
def big(tmp_path: Path) -> Path:
    (tmp_path / "big.py").write_text("x = 1\n" * 1_400_000)  # 8.4 MB, one line repeated
    (tmp_path / "one.min.js").write_text("var a=1;" * 2_500_000)  # one 20 MB line
    return tmp_path


async def _run(root: Path, name: str, **arguments: object) -> str:
    try:
        return (await execute(name, json.dumps(arguments), ToolContext(root))).output
    except ToolError as exc:
        return f"error: {exc}"


async def test_an_edit_whose_old_text_occurs_a_million_times_lists_ten(big: Path) -> None:
    out = await _run(big, "edit_file", path="big.py", old="x = 1", new="x = 2")
    assert "occurs 1400000 times" in out and "lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ..." in out


async def test_old_text_not_found_in_a_huge_file_still_points_at_the_closest_line(big: Path) -> None:
    out = await _run(big, "edit_file", path="big.py", old="x = 1\nx = 1\nq", new="y")
    assert out.startswith("error: old text not found") and "line 1" in out


async def test_replace_all_in_a_huge_file(big: Path) -> None:
    out = await _run(big, "edit_file", path="big.py", old="x = 1", new="x = 2", replace_all=True)
    assert "1400000 replacements" in out
    assert (big / "big.py").read_text().count("x = 2") == 1_400_000


async def test_search_cuts_a_huge_line_inside_ripgrep(big: Path) -> None:
    out = await _run(big, "search", pattern="var a")
    (line,) = out.splitlines()
    assert line.startswith("one.min.js:1: var a=1;") and len(line) < 500


async def test_outline_refuses_a_file_too_big_to_parse(big: Path) -> None:
    assert "too large to outline" in await _run(big, "outline", path="big.py")


async def test_file_tools_run_off_the_event_loop(tmp_path: Path) -> None:
    threads: list[threading.Thread] = []
    ctx = ToolContext(tmp_path, before_write=lambda _path: threads.append(threading.current_thread()))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await execute("write_file", json.dumps({"path": "a.txt", "content": "x\n" * 2_000_000}), ctx)
    task.cancel()
    assert threads and threads[0] is not threading.main_thread()
    assert ticks > 1  # the loop kept turning while the file was written


def test_a_huge_streamed_reply_is_not_parsed_again_for_every_brace() -> None:
    from fastcode.agent.tool_exec import EARLY_PARSE_CHARS, EarlyStarts

    parses = 0

    def parse(content: str) -> list:
        nonlocal parses
        parses += 1
        return []

    early = EarlyStarts(executor=None, step=1)  # type: ignore[arg-type]
    for _ in range(3000):  # a 3 MB reply full of braces
        early.text('{"a": 1} ' * 110, parse)
    assert parses <= EARLY_PARSE_CHARS // 990 + 2
