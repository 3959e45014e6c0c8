"""Local model servers: finding llama-server and vLLM, agent-tuned command lines, and their lifecycle.

Modules: `binaries` (where the binaries are, their `--help` read once and cached), `llama` and `vllm` (command
lines), `process` (ports, start, readiness, warm-up, stop, state files) and `embedded` (the no-API-key default run
on the bundled SmolLM2 model). Standard library only at import time, so `fastcode serve` starts instantly.
"""
