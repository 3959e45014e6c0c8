"""Plain-text tables for the command line (`trace show`, `serve status`, `fastcode bench`): rich lays the columns out
to fit their widest cell, so no figure is ever cut or misaligned. Imported only by the commands that print one."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


def to_text(table: Any, width: int = 200) -> list[str]:
    """A rich table as plain lines (no colour), trailing spaces removed."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None, soft_wrap=False)
    console.print(table)
    return [line.rstrip() for line in console.export_text().splitlines()]


def render(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = (), width: int = 200
) -> str:
    """A table of strings, columns `right` right-aligned, no box."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return "\n".join(to_text(table, width))
