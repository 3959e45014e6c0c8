"""File tools: read_file, write_file, edit_file, and the file helpers other tools share.

Owns how files are shown to the model (numbered lines, cut with a note), how they are written (an atomic
replace keeping the mode, newline style and a UTF-8 BOM), and the errors for missing, binary, non-UTF-8 files.
"""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from fastcode.tools.base import (
    ToolArgs,
    ToolContext,
    ToolError,
    ToolResult,
    register,
    relative,
    resolve_in_repo,
    writable_in_repo,
)
from fastcode.tools.edit_match import forgiving

MAX_LINES = 400
_CLOSEST_LINES = 20_000
_MAX_RATED_CHARS = 500
MAX_LINE_CHARS = 2_000
_BINARY_SNIFF = 8_192
_BOM = b"\xef\xbb\xbf"


# ---- shared helpers


def require_file(ctx: ToolContext, path: str, *, write: bool = False) -> Path:
    """Resolve `path` to an existing regular file in the repo, or raise a ToolError saying what is wrong."""
    target = (writable_in_repo if write else resolve_in_repo)(ctx.root, path)
    if target.is_dir():
        raise ToolError(f"{path} is a directory, not a file; use search, or run `ls {path}` to list it")
    if not target.exists():
        raise ToolError(_missing_message(path, target))
    if not target.is_file():
        raise ToolError(f"{path} is not a regular file")
    return target


def _missing_message(path: str, target: Path) -> str:
    message = f"no such file: {path}"
    parent = target.parent
    if not parent.is_dir():
        return f"{message} (its directory does not exist either)"
    with suppress(OSError):
        close = difflib.get_close_matches(target.name, os.listdir(parent), n=3, cutoff=0.6)
        if close:
            prefix = path[: len(path) - len(Path(path).name)]
            message += "; did you mean " + ", ".join(prefix + name for name in close) + "?"
    return message


def check_text(data: bytes, shown: str) -> None:
    """Refuse binary content (a NUL byte near the start)."""
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise ToolError(f"{shown} looks like a binary file ({len(data)} bytes); these tools work on text only")


def split_lines(text: str) -> list[str]:
    """Lines as editors and ripgrep count them: split on \\n only, a trailing \\r dropped."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def numbered(lines: list[str], first: int) -> list[str]:
    """`  12| text` lines, numbered from `first`, long lines cut."""
    width = max(4, len(str(first + len(lines) - 1)))
    out = []
    for number, line in enumerate(lines, start=first):
        if len(line) > MAX_LINE_CHARS:
            line = f"{line[:MAX_LINE_CHARS]} [... line cut, {len(line)} chars]"
        out.append(f"{number:>{width}}| {line}")
    return out


@cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(target: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and `os.replace`, keeping an existing file's mode."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _is_crlf(text: str) -> bool:
    """True when every line break is \\r\\n."""
    return "\r\n" in text and text.count("\r\n") == text.count("\n")


# ---- read_file


class ReadFileArgs(ToolArgs):
    path: str = Field(description="File path, relative to the repository root.")
    start_line: int | None = Field(None, ge=1, description="First line to show (1-based). Default 1.")
    end_line: int | None = Field(None, ge=1, description=f"Last line to show, inclusive. Default: {MAX_LINES} lines.")


@register
class ReadFile:
    name: ClassVar[str] = "read_file"
    description: ClassVar[str] = (
        f"Read a text file as numbered lines (`  12| text`). Shows up to {MAX_LINES} lines from start_line; "
        "use start_line/end_line to read other parts of long files."
    )
    Args: ClassVar[type[ToolArgs]] = ReadFileArgs
    read_only: ClassVar[bool] = True
    blocking: ClassVar[bool] = True

    async def run(self, args: ReadFileArgs, ctx: ToolContext) -> ToolResult:
        target = require_file(ctx, args.path)
        shown = relative(ctx.root, target)
        data = target.read_bytes()
        check_text(data, shown)
        lines = split_lines(data.decode("utf-8", errors="replace"))
        total = len(lines)
        if total == 0:
            return ToolResult(output=f"({shown} is empty)")
        start = args.start_line or 1
        if start > total:
            raise ToolError(f"start_line={start} is past the end of {shown}, which has {total} lines")
        if args.end_line is not None and args.end_line < start:
            raise ToolError(f"end_line={args.end_line} is before start_line={start}")
        end = min(total, args.end_line if args.end_line is not None else start + MAX_LINES - 1)
        out: list[str] = []
        used = 0
        for entry in numbered(lines[start - 1 : end], start):
            if out and used + len(entry) + 1 > ctx.max_output_chars:
                break
            out.append(entry)
            used += len(entry) + 1
        last = start + len(out) - 1
        if last < total:
            out.append(
                f"[... file has {total} lines; showing {start}-{last}. "
                f"Call read_file with start_line={last + 1} to read more.]"
            )
        return ToolResult(output="\n".join(out))


# ---- write_file


class WriteFileArgs(ToolArgs):
    path: str = Field(description="File path, relative to the repository root. Parent directories are created.")
    content: str = Field(description="The complete new content of the file.")


@register
class WriteFile:
    name: ClassVar[str] = "write_file"
    description: ClassVar[str] = (
        "Create a file, or overwrite one with new complete content. For changes to an existing file prefer edit_file."
    )
    Args: ClassVar[type[ToolArgs]] = WriteFileArgs
    read_only: ClassVar[bool] = False
    blocking: ClassVar[bool] = True

    async def run(self, args: WriteFileArgs, ctx: ToolContext) -> ToolResult:
        target = writable_in_repo(ctx.root, args.path)
        if target.is_dir():
            raise ToolError(f"{args.path} is a directory; give a file path")
        if target.exists() and not target.is_file():
            raise ToolError(f"{args.path} is not a regular file (a pipe, socket or device); it is left alone")
        shown = relative(ctx.root, target)
        existed = target.exists()
        content = args.content
        bom = b""
        if existed:
            old = target.read_bytes()
            if _is_crlf(old.decode("utf-8", errors="replace")) and "\r\n" not in content:
                content = content.replace("\n", "\r\n")
            if old.startswith(_BOM) and not content.startswith("\ufeff"):
                bom = _BOM
        ctx.before_write(target)
        atomic_write(target, bom + content.encode("utf-8"))
        count = len(split_lines(content)) if content else 0
        verb = "overwrote" if existed else "created"
        return ToolResult(output=f"{verb} {shown} ({count} lines)", changed_files=[shown])


# ---- edit_file


class EditFileArgs(ToolArgs):
    path: str = Field(description="File path, relative to the repository root.")
    old: str = Field(
        description="Exact text to replace, whitespace and indentation included; it must occur exactly once "
        "unless replace_all is true. Include a few surrounding lines to make it unique."
    )
    new: str = Field(description="The text to put in its place.")
    replace_all: bool = Field(False, description="Replace every occurrence of old instead of exactly one.")


@register
class EditFile:
    name: ClassVar[str] = "edit_file"
    description: ClassVar[str] = (
        "Edit a file by exact string replacement: `old` (copied exactly from the file) becomes `new`. "
        "Read the file first."
    )
    Args: ClassVar[type[ToolArgs]] = EditFileArgs
    read_only: ClassVar[bool] = False
    blocking: ClassVar[bool] = True

    async def run(self, args: EditFileArgs, ctx: ToolContext) -> ToolResult:
        if not args.old:
            raise ToolError("old is empty; to create a file or replace all of it use write_file")
        if args.old == args.new:
            raise ToolError("old and new are identical; nothing to change")
        target = require_file(ctx, args.path, write=True)
        shown = relative(ctx.root, target)
        data = target.read_bytes()
        check_text(data, shown)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(
                f"{shown} is not valid UTF-8 (bad byte at offset {exc.start}); edit_file edits UTF-8 only"
            ) from exc
        crlf = _is_crlf(text)
        old, new = args.old, args.new
        if crlf:
            text, old, new = (s.replace("\r\n", "\n") for s in (text, old, new))
        count, note = text.count(old), ""
        if count == 0 and not args.replace_all and (loose := forgiving(text, old, new)) is not None:
            old, new, note = loose
            count = 1
        if count == 0:
            raise ToolError(_not_found(shown, text, old))
        if count > 1 and not args.replace_all:
            lines = _occurrence_lines(text, old)
            listed = ", ".join(map(str, lines[:10])) + (", ..." if len(lines) > 10 else "")
            raise ToolError(
                f"old text occurs {count} times in {shown} (lines {listed}); pass more context or replace_all=true"
            )
        first = text.index(old)
        updated = text.replace(old, new) if args.replace_all else text.replace(old, new, 1)
        ctx.before_write(target)
        atomic_write(target, (updated.replace("\n", "\r\n") if crlf else updated).encode("utf-8"))
        plural = "s" if count > 1 else ""
        head = f"edited {shown}: {count} replacement{plural}" + ("; the first one:" if count > 1 else "")
        head += f" ({note})" if note else ""
        return ToolResult(output=f"{head}\n{_snippet(updated, first, new)}", changed_files=[shown])


def _occurrence_lines(text: str, old: str, limit: int = 11) -> list[int]:
    """The line numbers of the first `limit` occurrences (each newline counted once: linear in the text)."""
    lines, at, line, counted = [], text.find(old), 1, 0
    while at != -1 and len(lines) < limit:
        line += text.count("\n", counted, at)
        counted = at
        lines.append(line)
        at = text.find(old, at + len(old))
    return lines


def _snippet(updated: str, offset: int, new: str, context: int = 3, limit: int = 30) -> str:
    """Numbered lines around the replacement that starts at `offset` in the updated text."""
    lines = split_lines(updated)
    first = updated.count("\n", 0, offset)
    last = first + max(new.count("\n") - new.endswith("\n"), 0)
    lo = max(0, first - context)
    hi = max(lo + 1, min(len(lines), last + context + 1, lo + limit))
    return "\n".join(numbered(lines[lo:hi], lo + 1))


def _not_found(shown: str, text: str, old: str) -> str:
    message = f"old text not found in {shown}"
    stripped = old.strip()
    if stripped and stripped != old and stripped in text:
        line = text.count("\n", 0, text.index(stripped)) + 1
        return f"{message}; without its leading/trailing whitespace it occurs at line {line}"
    wanted = next((line.strip() for line in old.split("\n") if line.strip()), "")
    lines = split_lines(text)
    index = _closest_line(lines, wanted)
    if index is None:
        return f"{message}; no similar line either. Read the file and copy the text exactly"
    span = min(max(old.count("\n") + 1, 1), 10)
    shown_lines = "\n".join(numbered(lines[index : index + span], index + 1))
    advice = "copy the text exactly, whitespace included"
    return f"{message}. Closest match, at line {index + 1} ({advice}):\n{shown_lines}"


def _closest_line(lines: list[str], wanted: str, cutoff: float = 0.6) -> int | None:
    """Index of the line most like `wanted` (indentation ignored), rated as difflib.get_close_matches does. Each
    distinct line is rated once, and only the first `_CLOSEST_LINES` of them: a huge file costs bounded time."""
    if not wanted:
        return None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    best, best_ratio, seen = None, cutoff, set()
    for index, line in enumerate(lines):
        stripped = line.strip()[:_MAX_RATED_CHARS]
        if stripped in seen:
            continue
        if len(seen) >= _CLOSEST_LINES:
            break
        seen.add(stripped)
        matcher.set_seq1(stripped)
        if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best, best_ratio = index, ratio
    return best
