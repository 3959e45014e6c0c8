"""Local model servers: finding llama-server and vLLM, agent-tuned command lines, and their lifecycle.

Modules: `binaries` (where the binaries are, their `--help` read once and cached), `llama` and `vllm` (command
lines), `process` (ports, start, readiness, warm-up, reuse, stop), `procgroup` (process groups), `state` (state
files, leases), `keepalive` (the supervisor that stops an idle local server), `slot_cache` (its prompt cache kept
across restarts), `model_parts` (the embedded GGUF, assembled from its wheels) and
`embedded` (the no-API-key default run on the embedded Qwen2.5-Coder-1.5B-Instruct). Standard library only at import
time, so `fastcode serve` starts instantly.

May import: `fastcode.toolcalls` (the prefix a server is warmed with), `fastcode.models`, `fastcode.core`.
"""
