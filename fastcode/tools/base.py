"""The tool contract: a tool is one small class with pydantic arguments, registered by name.

The model sees each tool's `name`, `description` and the JSON schema of its `Args`. A tool raises `ToolError` for
anything the model should read and correct (a bad path, a missing match); it never crashes the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from fastcode.sandbox.policy import Sandbox


class ToolError(Exception):
    """A failure the model can read and act on; its message is the tool result."""


class ToolArgs(BaseModel):
    """Base for tool arguments: unknown fields are an error the model sees."""

    model_config = ConfigDict(extra="forbid")


class ToolResult(BaseModel):
    output: str
    changed_files: list[str] = []


@dataclass
class ToolContext:
    """What a tool may touch: the repo root, and a hook to call before it writes anything."""

    root: Path
    before_write: Callable[[Path | None], None] = lambda _path: None
    """Called with a path before a write to it, or None before a command that may write anywhere."""
    max_output_chars: int = 20_000
    env: dict[str, str] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    """Where commands (`run`) are confined; None: not at all."""


class Tool(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ToolArgs]]
    read_only: ClassVar[bool]
    # Optional `blocking: ClassVar[bool]`: `run` does blocking file work and never awaits; it runs in a thread.

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult: ...


REGISTRY: dict[str, type[Tool]] = {}
_T = TypeVar("_T", bound=type)


def register(cls: _T) -> _T:
    """Class decorator: make a tool available under its `name`."""
    REGISTRY[cls.name] = cls
    return cls


def tool_schema(cls: type[Tool]) -> dict[str, Any]:
    """The OpenAI `tools` entry for one tool, generated from its pydantic arguments."""
    params = cls.Args.model_json_schema()
    params.pop("title", None)
    for prop in params.get("properties", {}).values():
        prop.pop("title", None)
    return {
        "type": "function",
        "function": {"name": cls.name, "description": cls.description, "parameters": params},
    }


def parse_arguments(name: str, raw: str) -> tuple[type[Tool], ToolArgs]:
    """Find the tool and validate its arguments, or raise ToolError saying what is wrong."""
    cls = REGISTRY.get(name)
    if cls is None:
        raise ToolError(f"unknown tool {name!r}; available: {', '.join(sorted(REGISTRY))}")
    try:
        data = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"arguments for {name} are not valid JSON ({exc.msg} at char {exc.pos})") from exc
    except RecursionError as exc:
        raise ToolError(f"arguments for {name} are nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ToolError(f"arguments for {name} cannot be read: {str(exc).splitlines()[0][:120]}") from exc
    if not isinstance(data, dict):
        raise ToolError(f"arguments for {name} must be a JSON object")
    try:
        return cls, cls.Args.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
        )
        raise ToolError(f"invalid arguments for {name}: {problems}") from exc


def resolve_in_repo(root: Path, path: str) -> Path:
    """Resolve `path` against the repo root, refusing anything (`..`, absolute, symlinks) that leaves it."""
    root = root.resolve()
    if not path or "\x00" in path:
        raise ToolError("path is empty or invalid")
    candidate = Path(path) if os.path.isabs(path) else root / path
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise ToolError(f"path {path!r} is outside the repository root; use a path inside {root}")
    return resolved


def inside_repo(root: Path, path: str) -> Path | None:
    """`resolve_in_repo` for readers that skip rather than complain (context gathering): None when `path` leaves
    the repository or cannot be resolved. The same rules as the tools: one path policy."""
    try:
        return resolve_in_repo(root, path)
    except (ToolError, OSError, RuntimeError, ValueError):
        return None


PROTECTED_DIRS = frozenset({".git", ".fastcode"})
"""Git's metadata (a hook or `core.fsmonitor` there runs commands) and fastcode's own checkpoints and traces."""


def writable_in_repo(root: Path, path: str) -> Path:
    """`resolve_in_repo` for a write: also refuses anything under `.git/` or `.fastcode/`, whatever the case, and
    the repository's `.fastcode.toml` (in a trusted repository it chooses endpoints and commands)."""
    target = resolve_in_repo(root, path)
    parts = target.relative_to(root.resolve()).parts
    if any(part.lower() in PROTECTED_DIRS for part in parts):
        raise ToolError(f"{path!r} is inside .git/ or .fastcode/, which the file tools never write")
    if parts and parts[0].lower() == ".fastcode.toml":
        raise ToolError(".fastcode.toml is fastcode's own configuration; the file tools never write it")
    return target


def relative(root: Path, path: Path) -> str:
    """A path as the model should see it: relative to the repo root, with forward slashes."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        return path.as_posix()
