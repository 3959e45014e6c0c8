"""The tool list as the system prompt shows it to a model that gets no `tools` field (constrained and text modes):
one line per tool, its arguments as a compact signature, so the prefix stays short on a slow CPU prefill."""

from __future__ import annotations

from typing import Any

_TYPES = {"string": "str", "integer": "int", "boolean": "bool", "number": "float", "array": "list", "object": "dict"}


def _type_of(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return _TYPES.get(schema["type"], str(schema["type"]))
    options = [_type_of(s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return " | ".join(options) or "any"


def signature(tool: dict[str, Any]) -> str:
    """`read_file {"path": str, "start_line"?: int}: Read a text file …`"""
    function = tool["function"]
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required", []))
    fields = [
        f'"{name}"{"" if name in required else "?"}: {_type_of(schema)}'
        for name, schema in parameters.get("properties", {}).items()
    ]
    return f"- {function['name']} {{{', '.join(fields)}}}: {function.get('description', '').strip()}"


def describe_tools(tools: list[dict[str, Any]]) -> str:
    return "\n".join(signature(tool) for tool in tools)
