"""The reply shape a constrained server enforces: one JSON object, a short thought then one or more tool calls.

`{"thought": "...", "tool_calls": [{"name": "read_file", "arguments": {...}}, ...]}` — each call is an `anyOf` over
the tools, each with `name` fixed by `const` and `arguments` the tool's own parameter schema. Built once per run
from the tool list, so the request (and the server's grammar cache) is byte-stable from call to call.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

THOUGHT_CHARS = 400
"""A short thought keeps the model's reasoning without letting a small model ramble inside the JSON."""
BRIEF_THOUGHT_CHARS = 100
"""The thought of a search candidate after the first: its edit is the answer the tests judge, and on a CPU every
character of thought is decode time (a 1.5B model's 300-character thought is ≈ 4 s at 18 tokens/s)."""
NEW_CHARS = 800
"""A one-edit candidate's `new` (it replaces at most three lines): a 1.5B model sometimes loops inside it, writing
numbered lines until max_tokens (seen on the bundled suite: 512 tokens, 30 s of decode, and no edit at all)."""
MAX_CALLS = 6
WRITES = ("edit_file", "write_file")


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop keys grammar compilers do not need (titles, descriptions, defaults) to keep the grammar small."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "description", "default"):
            continue
        if isinstance(value, dict):
            out[key] = _clean(value) if key != "properties" else {k: _clean(v) for k, v in value.items()}
        elif isinstance(value, list):
            out[key] = [_clean(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def call_schema(tool: dict[str, Any], paths: Sequence[str] | None = None) -> dict[str, Any]:
    """One tool's call: `{"name": <const>, "arguments": <its parameters>}`; `paths` limits the files it writes."""
    function = tool["function"]
    parameters = _clean(copy.deepcopy(function.get("parameters") or {"type": "object"}))
    if paths and function["name"] in WRITES and "path" in parameters.get("properties", {}):
        parameters["properties"]["path"] = {"enum": list(paths)}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def reply_schema(
    tools: list[dict[str, Any]],
    paths: Sequence[str] | None = None,
    max_calls: int = MAX_CALLS,
    thought_chars: int = THOUGHT_CHARS,
) -> dict[str, Any]:
    """The whole reply: a thought of at most `thought_chars`, then 1..max_calls calls of the given tools."""
    return {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": thought_chars},
            "tool_calls": {
                "type": "array",
                "items": {"anyOf": [call_schema(tool, paths) for tool in tools]},
                "minItems": 1,
                "maxItems": max_calls,
            },
        },
        "required": ["thought", "tool_calls"],
        "additionalProperties": False,
    }


def response_format(
    tools: list[dict[str, Any]],
    paths: Sequence[str] | None = None,
    max_calls: int = MAX_CALLS,
    thought_chars: int = THOUGHT_CHARS,
) -> dict[str, Any]:
    """The OpenAI-style `response_format` carrying the schema (llama.cpp and vLLM both accept it)."""
    schema = reply_schema(tools, paths, max_calls, thought_chars)
    return {"type": "json_schema", "json_schema": {"name": "tool_calls", "strict": True, "schema": schema}}


def one_edit_format(olds: Mapping[str, Sequence[str]], thought_chars: int = THOUGHT_CHARS) -> dict[str, Any]:
    """The `response_format` of exactly one `edit_file` call on one of `olds`' files, whose `old` is one of the
    listed excerpts of that file (an empty list: any text). A small model often miscopies `old` (a third of its
    search candidates did not apply, measured on the bundled suite); picking it from what the prompt shows cannot."""
    variants = [
        {
            "type": "object",
            "properties": {
                "path": {"const": path},
                "old": {"enum": list(choices)} if choices else {"type": "string"},
                "new": {"type": "string", "maxLength": NEW_CHARS},
            },
            "required": ["path", "old", "new"],
            "additionalProperties": False,
        }
        for path, choices in olds.items()
    ]
    call = {
        "type": "object",
        "properties": {
            "name": {"const": "edit_file"},
            "arguments": variants[0] if len(variants) == 1 else {"anyOf": variants},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": thought_chars},
            "tool_calls": {"type": "array", "items": call, "minItems": 1, "maxItems": 1},
        },
        "required": ["thought", "tool_calls"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "tool_calls", "strict": True, "schema": schema}}
