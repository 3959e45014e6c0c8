"""The llama-server command line, tuned for an agent: prompt caching first, then decode speed.

`--host 127.0.0.1 --port P --jinja -c CTX -np 2 --kv-unified --metrics`, an alias (the model name requests use),
`--cache-ram` (host-memory prompt cache, so a planner and an actor conversation both stay cached) where the binary
has it, `-ngl 999 -fa on` only on GPU builds, and speculative decoding when asked: `--draft PATH` -> `-md PATH`,
`--lookup` -> n-gram lookup (`--spec-default`, else `--spec-type ngram-mod`) when the binary has it, and
`--slot-save-path DIR` for a kept-alive server whose prompt cache outlives it (see `slot_cache`). Requests are never
pinned to a slot (`id_slot`): the server picks the slot whose cache matches best.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastcode.launcher.binaries import Flag, cached_output, select_flags, supported_flags

PARALLEL_SLOTS = 2
"""Two slots: the planner's and the actor's conversations can each keep their prefix in the unified KV cache."""
CACHE_RAM_MIB = 4096
"""Upper bound of the host-memory prompt cache (`--cache-ram`); the server uses only what it needs."""
CPU_BATCH = 512
"""Prompt tokens per logical batch on a CPU (`--batch-size`; default 2048). The server reports its progress on a
prompt once per batch, and fastcode's first-token deadline restarts on each report: at ≈ 90 tokens/s a 2048-token
batch is 23–30 s without a sign of life. The CPU computes 512 at a time (the default micro-batch) either way:
measured on this machine, a 4,531-token prefill ran at 69.7 and 65.7 tokens/s with 2048, 68.7 and 67.1 with 512."""


@dataclass(frozen=True)
class LlamaOptions:
    """What `fastcode serve llama` (or the embedded default) asks for."""

    model: Path
    port: int
    ctx: int = 8192
    alias: str = ""
    """The model name the server reports and requests use; empty: the GGUF file name without `.gguf`."""
    draft: Path | None = None
    lookup: bool = False
    host: str = "127.0.0.1"
    slot_dir: Path | None = None
    """Where llama-server may save and restore slots (`--slot-save-path`); None: not at all."""

    @property
    def served_name(self) -> str:
        return self.alias or model_alias(self.model)


def model_alias(gguf: Path) -> str:
    return gguf.name.removesuffix(".gguf")


def help_text(command: Sequence[str]) -> str:
    return cached_output([*command, "--help"], timeout_s=60)


def gpu_build(command: Sequence[str]) -> bool:
    """True when `--list-devices` names any non-CPU device (CUDA, Metal, Vulkan, ROCm, ...)."""
    text = cached_output([*command, "--list-devices"], timeout_s=60)
    lines = text.split("Available devices:", 1)[1].splitlines() if "Available devices:" in text else []
    devices = [ln.strip() for ln in lines if ln.strip() and ln.startswith((" ", "\t"))]
    return any(d != "(none)" for d in devices)


def _lookup_flags(text: str, supported: set[str]) -> tuple[list[Flag], list[str]]:
    if "--spec-default" in supported:
        return [Flag.of("--spec-default")], []
    if "--spec-type" in supported:
        for kind in ("ngram-mod", "ngram-simple", "ngram-cache"):
            if kind in text:
                return [Flag.of("--spec-type", kind)], []
    return [], ["this llama-server has no n-gram lookup decoding: --lookup ignored"]


def llama_flags(opts: LlamaOptions, text: str, *, gpu: bool) -> tuple[list[Flag], list[str]]:
    """The flags for `opts` given the binary's help text; warnings for what cannot be honoured."""
    supported = supported_flags(text)
    flags = [
        Flag.of(("-m", "--model"), opts.model),
        Flag.of("--host", opts.host),
        Flag.of("--port", opts.port),
        Flag.of(("-a", "--alias"), opts.served_name, why="the server reports the file name as the model"),
        Flag.of("--jinja", why="no chat template tool calling"),
        Flag.of(("-c", "--ctx-size"), opts.ctx),
        Flag.of(("-np", "--parallel"), PARALLEL_SLOTS),
        Flag.of(("--kv-unified", "-kvu"), why="slots do not share one KV buffer"),
        Flag.of("--metrics"),
    ]
    warnings: list[str] = []
    if "--cache-ram" in supported or "-cram" in supported:
        flags.append(Flag.of(("--cache-ram", "-cram"), CACHE_RAM_MIB))
    if not gpu:
        flags.append(Flag.of(("-b", "--batch-size"), CPU_BATCH))
    if gpu:
        flags.append(Flag.of(("-ngl", "--gpu-layers", "--n-gpu-layers"), 999))
        fa_value = re.search(r"--flash-attn\s+\[?on", text) is not None
        flags.append(Flag.of(("-fa", "--flash-attn"), *(["on"] if fa_value else [])))
    if opts.draft is not None:
        flags.append(Flag.of(("-md", "--model-draft", "--spec-draft-model"), opts.draft, why="no draft model"))
        if gpu:
            flags.append(Flag.of(("-ngld", "--gpu-layers-draft", "--n-gpu-layers-draft"), 999))
    if opts.slot_dir is not None:
        flags.append(Flag.of("--slot-save-path", opts.slot_dir, why="the prompt cache is lost when it stops"))
    if opts.lookup:
        extra, notes = _lookup_flags(text, supported)
        flags += extra
        warnings += notes
    return flags, warnings


def llama_command(command: Sequence[str], opts: LlamaOptions, text: str | None = None,
                  *, gpu: bool | None = None) -> tuple[list[str], list[str]]:  # fmt: skip
    """(argv, warnings) for llama-server. `text` (the help) and `gpu` are read from the binary when not given."""
    text = help_text(command) if text is None else text
    gpu = gpu_build(command) if gpu is None else gpu
    flags, warnings = llama_flags(opts, text, gpu=gpu)
    argv, dropped = select_flags(flags, supported_flags(text) if text else None)
    if not text:
        warnings.append(f"could not read {command[0]} --help: flags passed unchecked")
    return [*command, *argv], warnings + dropped
