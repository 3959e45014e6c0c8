"""The search tool: ripgrep over the repo, honouring .gitignore, matches as `path:line: text`.

The command line is built with `ripgrepy`; this module runs it itself (in a thread, so searches overlap) and
streams rg's output (`path NUL line:text`), stopping rg as soon as `max_results` is exceeded: memory stays bounded
on huge repos, and the matches rg found are kept even when it also reports an unreadable file. rg cuts long lines
itself (`--max-columns`), so a minified 100 MB line costs milliseconds, not gigabytes (rg's JSON output ignores
that limit, which is why it is not used).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from fastcode.core.paths import own_program
from fastcode.tools.base import (
    ToolArgs,
    ToolContext,
    ToolError,
    ToolResult,
    register,
    relative,
    resolve_in_repo,
)

MAX_MATCH_CHARS = 300
_MAX_COLUMNS = 400
"""Bytes of a matching line rg prints; the rest is replaced by rg's own "[... omitted end of long line]"."""


@cache
def rg_binary() -> str:
    """The `rg` executable: on PATH, else next to the running Python (the `ripgrep` wheel puts it there)."""
    found = own_program("rg")
    if found:
        return found
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file():
        return str(beside)
    raise ToolError("ripgrep (rg) is not installed; install the `ripgrep` package")


@dataclass
class _Scan:
    matches: list[tuple[str, int, str]] = field(default_factory=list)
    truncated: bool = False
    returncode: int = 0
    stderr: str = ""


def _command(pattern: str, target: Path, glob: str | None) -> list[str]:
    from ripgrepy import Ripgrepy

    rg = Ripgrepy(pattern, str(target), rg_path=rg_binary()).no_config().sort("path")
    if glob:
        rg.glob(glob)
    output = ["--no-heading", "--with-filename", "--line-number", "--null", "--color", "never",
              "--max-columns", str(_MAX_COLUMNS), "--max-columns-preview"]  # fmt: skip
    # The pattern via --regexp (it may start with "-"); .gitignore honoured even outside a git checkout.
    return [*rg.command, *output, "--no-require-git", "--regexp", pattern, "--", str(target)]


def _match(raw: bytes) -> tuple[str, int, str] | None:
    """One output line, `path NUL line:text`, as (path, line number, text)."""
    path, sep, rest = raw.partition(b"\0")
    number, colon, text = rest.partition(b":")
    if not (sep and colon and number.isdigit()):
        return None
    decode = lambda b: b.decode("utf-8", errors="replace")  # noqa: E731
    return decode(path), int(number), decode(text)


def _scan(command: list[str], root: Path, limit: int) -> _Scan:
    """Run rg, keeping at most `limit` matches; blocking, so call it in a thread."""
    scan = _Scan()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                match = _match(raw)
                if match is None:
                    continue
                if len(scan.matches) >= limit:
                    scan.truncated = True
                    break
                scan.matches.append(match)
        finally:
            if proc.poll() is None and scan.truncated:
                proc.kill()
            proc.stdout.close()
            scan.returncode = proc.wait()
        errors.seek(0)
        scan.stderr = errors.read().decode("utf-8", errors="replace").strip()
    return scan


class SearchArgs(ToolArgs):
    pattern: str = Field(description="Regular expression (Rust regex syntax; escape ( [ . * etc. with \\).")
    path: str = Field(".", description="File or directory to search, relative to the repository root.")
    glob: str | None = Field(None, description="Only files matching this glob, e.g. '*.py'; '!*.md' excludes.")
    max_results: int = Field(50, ge=1, le=1000, description="Stop after this many matching lines.")


@register
class Search:
    name: ClassVar[str] = "search"
    description: ClassVar[str] = (
        "Search file contents with ripgrep (skips .gitignored and hidden files). "
        "Returns matching lines as `path:line: text`."
    )
    Args: ClassVar[type[ToolArgs]] = SearchArgs
    read_only: ClassVar[bool] = True

    async def run(self, args: SearchArgs, ctx: ToolContext) -> ToolResult:
        if not args.pattern:
            raise ToolError("pattern is empty")
        target = resolve_in_repo(ctx.root, args.path)
        if not target.exists():
            raise ToolError(f"no such file or directory: {args.path}")
        root = ctx.root.resolve()
        command = _command(args.pattern, target, args.glob)
        scan = await asyncio.to_thread(_scan, command, root, args.max_results)
        if scan.returncode == 2 and not scan.matches and not scan.truncated:
            if "regex" in scan.stderr:
                raise ToolError(f"invalid search pattern: {scan.stderr}")
            raise ToolError(f"search failed: {scan.stderr or 'rg exited with status 2'}")
        where = relative(root, target) + (f" (glob {args.glob!r})" if args.glob else "")
        if not scan.matches:
            return ToolResult(output=f"no matches for {args.pattern!r} in {where}")
        return ToolResult(output=_format(scan, root, args.max_results, ctx.max_output_chars))


def _shown(root: Path, path: str) -> str:
    """rg prints paths under the (resolved) root we gave it: show them relative to it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _format(scan: _Scan, root: Path, max_results: int, budget: int) -> str:
    out: list[str] = []
    used = 0
    for path, line, text in scan.matches:
        text = text.rstrip("\r\n")
        if len(text) > MAX_MATCH_CHARS:
            text = text[:MAX_MATCH_CHARS] + " [...]"
        entry = f"{_shown(root, path)}:{line}: {text}"
        if out and used + len(entry) + 1 > budget:
            out.append(f"[... output cut at {len(out)} matches; narrow the pattern, path or glob]")
            return "\n".join(out)
        out.append(entry)
        used += len(entry) + 1
    if scan.truncated:
        out.append(f"[... stopped at {max_results} matches; narrow the pattern, path or glob, or raise max_results]")
    if scan.returncode == 2 and scan.stderr:
        out.append(f"[some files could not be searched: {scan.stderr.splitlines()[0]}]")
    return "\n".join(out)
