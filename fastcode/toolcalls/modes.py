"""Tool modes: how one model profile is asked for tool calls and how its answer becomes calls and history.

- `native`: the endpoint's own tool calling (`tools` in the request, `tool_calls` in the answer).
- `constrained`: the server enforces the reply shape of `schema.py` (`response_format` with a JSON schema, which
  llama.cpp compiles to a grammar and vLLM to structured outputs); the tools are described in the system prompt.
- `text`: the same reply shape, asked for in the system prompt only, parsed from the content.
- `auto`: constrained on llama.cpp / vLLM endpoints (the embedded model included), native elsewhere.

In every mode a reply that carries its calls as text is recovered (`recover.py`) and the trace says so. The
constrained and text modes keep the model's reply verbatim in the history, so the server's KV cache of its own
answer stays valid, and hand all of a turn's results back in one user message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from fastcode.core.events import ToolCallSpec
from fastcode.models import messages as msg
from fastcode.toolcalls.recover import recover_calls
from fastcode.toolcalls.schema import (
    BRIEF_THOUGHT_CHARS,
    MAX_CALLS,
    THOUGHT_CHARS,
    one_edit_format,
    response_format,
)


@dataclass
class Parsed:
    calls: list[ToolCallSpec] = field(default_factory=list)
    text: str = ""
    """What the model said besides its calls (its thought or plan)."""
    recovered: str = ""
    """How calls written as text were found ("fenced json", "tool_call tag", …); "" when none were."""


@dataclass(frozen=True)
class ReplyShape:
    """What one reply may hold, where a mode can enforce it (constrained; the others ignore it)."""

    only: frozenset[str] | None = None
    """The tools it may call (None: all)."""
    paths: tuple[str, ...] | None = None
    """The files it may write (None: any)."""
    one_call: bool = False
    """Exactly one call."""
    brief: bool = False
    """A shorter thought before the calls (a search candidate after the first)."""
    olds: Mapping[str, Sequence[str]] | None = None
    """With `one_call` and only `edit_file`: the call is one edit whose `old` is one of the excerpts listed for its
    file (none listed: any text)."""


ANY_REPLY = ReplyShape()


class ToolMode(Protocol):
    name: ClassVar[str]
    tools_in_prompt: ClassVar[bool]
    """True when the system prompt must describe the tools (the request carries no `tools`)."""

    def request(
        self, tools: list[dict[str, Any]], shape: ReplyShape = ANY_REPLY
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The `tools` to send and extra request fields, enforcing `shape` where the mode can without changing the
        prompt (constrained)."""
        ...

    def parse(self, content: str, calls: list[ToolCallSpec], known: set[str], call_id: str) -> Parsed: ...

    def assistant_message(self, content: str, parsed: Parsed) -> dict[str, Any]: ...

    def results(self, outcomes: list[tuple[ToolCallSpec, str]], after: str = "") -> list[dict[str, Any]]:
        """The messages handing a turn's results back, then `after` (fastcode's test run, or a nudge)."""
        ...


def _arguments_shown(call: ToolCallSpec) -> str:
    return call.arguments if len(call.arguments) <= 300 else call.arguments[:300] + "…"


class Native:
    name: ClassVar[str] = "native"
    tools_in_prompt: ClassVar[bool] = False

    def request(
        self, tools: list[dict[str, Any]], shape: ReplyShape = ANY_REPLY
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return tools, {}

    def parse(self, content: str, calls: list[ToolCallSpec], known: set[str], call_id: str) -> Parsed:
        if calls:
            return Parsed(calls, content)
        found = recover_calls(content, known, id_prefix=f"text_{call_id}")
        return Parsed(found.calls, found.text, found.how)

    def assistant_message(self, content: str, parsed: Parsed) -> dict[str, Any]:
        return msg.assistant(parsed.text if parsed.recovered else content, parsed.calls)

    def results(self, outcomes: list[tuple[ToolCallSpec, str]], after: str = "") -> list[dict[str, Any]]:
        return [msg.tool(call.id, output) for call, output in outcomes] + ([msg.user(after)] if after else [])


class Text:
    name: ClassVar[str] = "text"
    tools_in_prompt: ClassVar[bool] = True

    def request(
        self, tools: list[dict[str, Any]], shape: ReplyShape = ANY_REPLY
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [], {}

    def parse(self, content: str, calls: list[ToolCallSpec], known: set[str], call_id: str) -> Parsed:
        found = recover_calls(content, known, id_prefix=f"call_{call_id}")
        # Our own reply shape is the expected answer, not a recovery.
        return Parsed(calls + found.calls, found.text, "" if found.how == "json reply" else found.how)

    def assistant_message(self, content: str, parsed: Parsed) -> dict[str, Any]:
        return {"role": "assistant", "content": content}

    def results(self, outcomes: list[tuple[ToolCallSpec, str]], after: str = "") -> list[dict[str, Any]]:
        parts = [
            f"[{i}] {call.name} {_arguments_shown(call)}\n{output}" for i, (call, output) in enumerate(outcomes, 1)
        ]
        text = ("Tool results:\n\n" + "\n\n".join(parts)) if parts else ""
        text = "\n\n".join(part for part in (text, after) if part)
        return [msg.user(text)] if text else []


class Constrained(Text):
    name: ClassVar[str] = "constrained"

    def request(
        self, tools: list[dict[str, Any]], shape: ReplyShape = ANY_REPLY
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        allowed = [t for t in tools if shape.only is None or t["function"]["name"] in shape.only] or tools
        thought = BRIEF_THOUGHT_CHARS if shape.brief else THOUGHT_CHARS
        if shape.one_call and shape.olds and shape.only == frozenset({"edit_file"}):
            return [], {"response_format": one_edit_format(shape.olds, thought)}
        calls = 1 if shape.one_call else MAX_CALLS
        return [], {"response_format": response_format(allowed, shape.paths, max_calls=calls, thought_chars=thought)}


MODES: dict[str, type[ToolMode]] = {"native": Native, "constrained": Constrained, "text": Text}


def resolve_mode(configured: str, server_kind: str) -> ToolMode:
    """The mode object for a profile: `auto` picks constrained on llama.cpp / vLLM servers, native elsewhere."""
    if configured == "auto":
        configured = "constrained" if server_kind in ("llamacpp", "vllm") else "native"
    return MODES[configured]()
