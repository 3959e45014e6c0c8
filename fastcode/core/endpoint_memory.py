"""What fastcode measured of an endpoint, remembered for its next runs: `~/.cache/fastcode/<name>.json`
($XDG_CACHE_HOME respected), one JSON object from endpoint key to value, the most recently written last and at most
`MAX_REMEMBERED` keys, replaced atomically. A missing or unreadable file is an empty memory; a failed write is
forgotten quietly (the next run measures again). Standard library only."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from fastcode.core.paths import cache_root

MAX_REMEMBERED = 50
"""Endpoints kept per file; the oldest go first."""


def endpoint_key(base_url: str, model: str, *, launched_here: bool = False) -> str:
    """What a measurement of an endpoint is remembered under. A server fastcode started itself gets a new port on
    each start but runs at this machine's speed for that model, so it is remembered by the model alone."""
    return f"launched here|{model}" if launched_here else f"{base_url}|{model}"


def memory_file(name: str) -> Path:
    return cache_root() / f"{name}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall(name: str, key: str) -> Any | None:
    """The value remembered for `key` in memory `name`, else None."""
    return _read(memory_file(name)).get(key)


def remember(name: str, key: str, value: Any) -> None:
    if not key:
        return
    path = memory_file(name)
    data = _read(path)
    data.pop(key, None)
    data[key] = value
    data = dict(list(data.items())[-MAX_REMEMBERED:])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
