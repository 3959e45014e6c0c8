"""The contract the model sees: schema order and shape, read-only flags, and bad calls as ToolError text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fastcode.tools import REGISTRY, ToolContext, ToolError, execute, tool_schemas

ORDER = ["read_file", "search", "outline", "edit_file", "write_file", "run", "finish"]


def keys(value: Any) -> set[str]:
    """Every dict key anywhere in a JSON-like value."""
    if isinstance(value, dict):
        return set(value) | set().union(*(keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys(v) for v in value))
    return set()


def test_schemas_are_stable_ordered_and_title_free() -> None:
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == ORDER
    assert "title" not in keys(schemas)
    assert json.dumps(schemas) == json.dumps(tool_schemas())
    for schema in schemas:
        assert schema["type"] == "function"
        params = schema["function"]["parameters"]
        assert params["type"] == "object"
        assert params["additionalProperties"] is False
        assert schema["function"]["description"]
        assert all(prop.get("description") for prop in params["properties"].values())


def test_required_arguments() -> None:
    required = {s["function"]["name"]: s["function"]["parameters"].get("required", []) for s in tool_schemas()}
    assert required == {
        "read_file": ["path"],
        "search": ["pattern"],
        "outline": ["path"],
        "edit_file": ["path", "old", "new"],
        "write_file": ["path", "content"],
        "run": ["command"],
        "finish": ["summary"],
    }


def test_read_only_flags() -> None:
    assert {name for name in ORDER if REGISTRY[name].read_only} == {"read_file", "search", "outline"}


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(root=tmp_path)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("delete_everything", "{}", "unknown tool 'delete_everything'; available: edit_file, finish,"),
        ("read_file", "{not json", "arguments for read_file are not valid JSON"),
        ("read_file", "[1]", "arguments for read_file must be a JSON object"),
        ("read_file", "{}", "invalid arguments for read_file: path: Field required"),
        ("read_file", '{"path": "a", "bogus": 1}', "invalid arguments for read_file: bogus: Extra inputs"),
        (
            "read_file",
            '{"path": "a", "start_line": 0}',
            "start_line: Input should be greater than or equal to 1",
        ),
        ("run", '{"command": "true", "timeout_s": "soon"}', "invalid arguments for run: timeout_s:"),
        ("edit_file", '{"path": "a", "old": "x"}', "invalid arguments for edit_file: new: Field required"),
    ],
)
async def test_bad_calls_are_tool_errors(ctx: ToolContext, name: str, raw: str, message: str) -> None:
    with pytest.raises(ToolError) as err:
        await execute(name, raw, ctx)
    assert message in str(err.value)


async def test_os_errors_become_tool_errors(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ToolError, match=r"write_file failed: .*plain"):
        await execute("write_file", json.dumps({"path": "plain/child.txt", "content": "y"}), ctx)


async def test_finish_returns_the_summary(ctx: ToolContext) -> None:
    result = await execute("finish", json.dumps({"summary": "fixed the bug"}), ctx)
    assert result.output == "fixed the bug"
    assert result.changed_files == []


def test_importing_tools_stays_light() -> None:
    code = "import sys, fastcode.tools; print([m for m in ('tree_sitter', 'ripgrepy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
