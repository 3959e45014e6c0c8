"""Text any writer accepts: lone surrogates (a model can stream them, a file name can hold them) become U+FFFD.

Used where text from a model, a tool or a server turns into UTF-8: the event stream (trace file, --json stdout) and
the model client's deltas.
"""

from __future__ import annotations

from typing import Any


def clean(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (no UTF-8 writer accepts them). The checks run in C: the
    whole conversation passes through here before every request."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_value(value: Any) -> Any:
    """`clean` applied to every string inside nested dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(clean_value(v) for v in value)
    if hasattr(value, "model_dump") and hasattr(value, "model_validate"):  # a pydantic object (a ToolCallSpec)
        return type(value).model_validate(clean_value(value.model_dump()))
    return value
