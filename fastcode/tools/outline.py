"""The outline tool: a file's definitions (kind, name, line range), methods nested under their classes.

Parsing lives in `fastcode.tools.symbols`; this module only formats it for the model.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from fastcode.tools.base import ToolArgs, ToolContext, ToolError, ToolResult, register, relative
from fastcode.tools.files import check_text, require_file
from fastcode.tools.symbols import Definition, definitions, language_for

MAX_OUTLINE_BYTES = 2_000_000
"""Larger files take tree-sitter seconds and a gigabyte: search them instead."""


class OutlineArgs(ToolArgs):
    path: str = Field(description="Source file, relative to the repository root.")


@register
class Outline:
    name: ClassVar[str] = "outline"
    description: ClassVar[str] = (
        "List the definitions in a source file (classes, functions, methods, ...) with their line ranges, "
        "e.g. `class Foo  L3-20`. Cheaper than reading the whole file; then read_file the lines you need."
    )
    Args: ClassVar[type[ToolArgs]] = OutlineArgs
    read_only: ClassVar[bool] = True
    blocking: ClassVar[bool] = True

    async def run(self, args: OutlineArgs, ctx: ToolContext) -> ToolResult:
        target = require_file(ctx, args.path)
        shown = relative(ctx.root, target)
        language = language_for(target)
        if language is None:
            raise ToolError(f"outline does not know the language of {shown}; use read_file or search instead")
        if (size := target.stat().st_size) > MAX_OUTLINE_BYTES:
            raise ToolError(f"{shown} is {size / 1e6:.1f} MB, too large to outline; use search or read_file ranges")
        source = target.read_bytes()
        check_text(source, shown)
        found = definitions(target, source)
        total = source.count(b"\n") + (0 if source.endswith(b"\n") or not source else 1)
        header = f"{shown} ({language}, {total} lines)"
        if not found:
            return ToolResult(output=f"{header}: no definitions found")
        return ToolResult(output=format_outline(header, found, ctx.max_output_chars))


def _encloses(outer: Definition, inner: Definition) -> bool:
    return inner.parent == outer.name and outer.start_line <= inner.start_line and inner.end_line <= outer.end_line


def format_outline(header: str, found: list[Definition], budget: int) -> str:
    """One line per definition, `  kind name  La-b`, indented under the definition enclosing it."""
    out = [header]
    used = len(header)
    stack: list[Definition] = []
    for index, item in enumerate(found):
        while stack and not _encloses(stack[-1], item):
            stack.pop()
        label = item.name if stack or item.parent is None else f"{item.parent}.{item.name}"
        entry = f"{'  ' * len(stack)}{item.kind} {label}  L{item.start_line}-{item.end_line}"
        if used + len(entry) + 1 > budget:
            out.append(f"[... {len(found) - index} more definitions; read_file the rest of the file]")
            break
        out.append(entry)
        used += len(entry) + 1
        stack.append(item)
    return "\n".join(out)
