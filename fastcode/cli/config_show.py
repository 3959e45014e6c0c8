"""`fastcode config show`: the merged settings as TOML that fastcode reads back (`config show > .fastcode.toml`
works and changes nothing), each key with the layer it came from — defaults and unset keys as comments — API keys
masked, and the endpoint a run would really use."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from fastcode.core.config import Loaded, masked

COMMENT_COLUMN = 48


def toml_value(value: Any) -> str:
    """One value in TOML (JSON's string escapes are TOML's too); None has no TOML form: see `lines`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def _table(loaded: Loaded, dotted: str, values: dict[str, Any]) -> Iterator[str]:
    yield f"[{dotted}]"
    nested = []
    for key, value in values.items():
        source = loaded.source_of(f"{dotted}.{key}")
        if isinstance(value, dict) and dotted != "models":
            nested.append((key, value))
            continue
        if value is None:
            line = f"# {_key(key)} ="
        else:  # a default stays a comment: read back, the file sets exactly what the layers set (and no endpoint)
            line = ("# " if source == "default" else "") + f"{_key(key)} = {toml_value(value)}"
        yield f"{line:<{COMMENT_COLUMN}} # {'unset, ' if value is None else ''}{source}"
    yield ""
    for key, value in nested:
        yield from _table(loaded, f"{dotted}.{_key(key)}", value)


def would_use(loaded: Loaded) -> str:
    """Which endpoint `fastcode "TASK"` would call with these settings (no --local, no --base-url)."""
    profile = loaded.settings.profile("act")[1]
    if loaded.endpoint_configured():
        return f"{profile.model} @ {profile.base_url}"
    from fastcode.launcher.embedded import local_available

    if local_available(loaded):
        return "a local llama-server started for the run, with the embedded model (no endpoint is configured)"
    return "nothing: no endpoint is configured and the local extra is not installed (a run fails; see README)"


def lines(loaded: Loaded) -> Iterator[str]:
    if loaded.ignored:
        yield f"# {loaded.ignored}"
    yield f"# a run would use: {would_use(loaded)}"
    yield ""
    data = loaded.settings.model_dump(mode="json")
    for section, values in data.items():
        if section == "models":
            for name, profile in values.items():
                yield from _table(loaded, f"models.{_key(name)}", profile)
                key_value = os.environ.get(profile["api_key_env"])
                yield f"# ${profile['api_key_env']} = {masked(key_value) if key_value else '(not set)'}"
                yield ""
            continue
        yield from _table(loaded, section, values)
        if section == "sandbox":
            from fastcode.sandbox.policy import Sandbox

            yield f"# enforced: {Sandbox.from_settings(loaded.settings.sandbox).describe()}"
            yield ""
