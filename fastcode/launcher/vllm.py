"""The `vllm serve` command line, tuned for an agent.

`vllm serve MODEL --host 127.0.0.1 --port P --enable-prefix-caching --enable-prompt-tokens-details
--enable-per-request-metrics --enable-auto-tool-choice --tool-call-parser PARSER --served-model-name NAME
[--max-model-len N]`; per-request metrics give each answer the server's own time to the first token (its prefill,
which the trace splits from the wait). The parser
follows the model family (qwen3-coder -> qwen3_coder, qwen2.5 / qwen -> hermes, llama-3 -> llama3_json, mistral ->
mistral, else hermes); when the installed vLLM lists its parsers and lacks the chosen one, hermes is used with a
warning. The help is read with `serve --help=all` (newer vLLM prints only a summary for `--help`), else
`serve --help`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastcode.launcher.binaries import Flag, cached_output, flag_choices, select_flags, supported_flags

_PARSERS = (
    (re.compile(r"qwen3[-_.]?coder"), "qwen3_coder"),
    (re.compile(r"qwen"), "hermes"),
    (re.compile(r"llama[-_.]?3"), "llama3_json"),
    (re.compile(r"mi[sx]tral|codestral|devstral"), "mistral"),
)


@dataclass(frozen=True)
class VllmOptions:
    model: str
    """A Hugging Face name or a local path."""
    port: int
    max_model_len: int | None = None
    served_name: str = ""
    """The model name requests use; empty: the model as given."""
    host: str = "127.0.0.1"

    @property
    def name(self) -> str:
        return self.served_name or self.model


def tool_call_parser(model: str) -> str:
    """vLLM's tool-call parser for a model family, from its name or path."""
    lowered = model.lower()
    return next((parser for pattern, parser in _PARSERS if pattern.search(lowered)), "hermes")


def help_text(command: Sequence[str]) -> str:
    text = cached_output([*command, "serve", "--help=all"], timeout_s=180)
    return text if "--port" in text else cached_output([*command, "serve", "--help"], timeout_s=180)


def vllm_flags(opts: VllmOptions, text: str) -> tuple[list[Flag], list[str]]:
    parser, warnings = tool_call_parser(opts.model), []
    choices = flag_choices(text, "--tool-call-parser")
    if choices and parser not in choices:
        warnings.append(f"this vllm has no tool-call parser {parser!r}: using hermes")
        parser = "hermes"
    flags = [
        Flag.of("--host", opts.host),
        Flag.of("--port", opts.port),
        Flag.of("--enable-prefix-caching", why="no prompt caching"),
        Flag.of("--enable-prompt-tokens-details", why="cached tokens are not reported"),
        Flag.of("--enable-per-request-metrics", why="the server's own prefill time is not reported"),
        Flag.of("--enable-auto-tool-choice", why="no tool calls"),
        Flag.of("--tool-call-parser", parser, why="no tool calls"),
        Flag.of("--served-model-name", opts.name),
    ]
    if opts.max_model_len:
        flags.append(Flag.of(("--max-model-len", "--max_model_len"), opts.max_model_len))
    return flags, warnings


def vllm_command(command: Sequence[str], opts: VllmOptions, text: str | None = None) -> tuple[list[str], list[str]]:
    """(argv, warnings) for `vllm serve`; `text` (the help) is read from the binary when not given."""
    text = help_text(command) if text is None else text
    flags, warnings = vllm_flags(opts, text)
    argv, dropped = select_flags(flags, supported_flags(text) if text else None)
    if not text:
        warnings.append(f"could not read {' '.join(command)} serve --help: flags passed unchecked")
    return [*command, "serve", opts.model, *argv], warnings + dropped
