"""The agent side of one instance: `fastcode exec --json` in its own process, optionally against a scripted server.

The agent gets only the problem statement and the copy (`--repo`); its events go to a file, the last line of which
is the `{"type": "result", ...}` object, and its trace stays in the copy's `.fastcode/runs/<run-id>/`.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastcode.evals import procs

KILL_GRACE_S = 60.0
"""Seconds past the agent's own timeout before the harness kills it."""
SERVER_START_S = 20.0


class AgentError(Exception):
    """The agent could not run (config or endpoint error, crash, no result): an error for the instance."""


@dataclass
class AgentOptions:
    base_url: str | None = None
    model: str | None = None
    overrides: list[str] = field(default_factory=list)
    max_steps: int | None = None
    timeout_s: float | None = None
    kill_after_s: float = 900 + KILL_GRACE_S
    scripted_dir: Path | None = None
    """`--model scripted:DIR`: each instance is driven by DIR/<instance_id>.json."""


@dataclass
class AgentRun:
    result: dict
    """The final `{"type": "result"}` object."""
    exit_code: int
    trace: Path | None


def exec_command(task: str, repo: Path, opts: AgentOptions, *, base_url: str | None, model: str | None) -> list[str]:
    args = [sys.executable, "-m", "fastcode", "exec", "--json", "--repo", str(repo)]
    if base_url:
        args += ["--base-url", base_url]
    if model:
        args += ["--model", model]
    if opts.max_steps is not None:
        args += ["--max-steps", str(opts.max_steps)]
    if opts.timeout_s is not None:
        args += ["--timeout", str(opts.timeout_s)]
    for item in opts.overrides:
        args += ["-c", item]
    return [*args, "--", task]


def run_agent(task: str, repo: Path, opts: AgentOptions, *, instance_id: str, logs: Path) -> AgentRun:
    """Run the agent to the end; AgentError when it did not produce a usable result."""
    base_url, model, server = opts.base_url, opts.model, None
    if opts.scripted_dir is not None:
        script = opts.scripted_dir / f"{instance_id}.json"
        if not script.is_file():
            raise AgentError(f"no scripted trajectory {script}")
        server, base_url = start_scripted_server(script, cwd=repo, log=logs / "server.log")
        model = _script_model(script)
    events, stderr = logs / "events.jsonl", logs / "agent.log"
    try:
        with events.open("wb") as out, stderr.open("wb") as err:
            proc = procs.start(
                exec_command(task, repo, opts, base_url=base_url, model=model),
                cwd=repo,
                env=procs.child_env(),
                stdout=out,
                stderr=err,
            )
            try:
                code = proc.wait(opts.kill_after_s)
            except subprocess.TimeoutExpired:
                procs.stop(proc)
                raise AgentError(f"the agent did not stop within {opts.kill_after_s:.0f} s and was killed") from None
            finally:
                procs.forget(proc)
    finally:
        if server is not None:
            procs.stop(server)
    result = _last(events, "result")
    if code in (2, 3) or result is None:
        said = [line for line in stderr.read_text(errors="replace").splitlines() if line.strip()]
        reason = next((line for line in reversed(said) if line.startswith("fastcode:")), said[-1] if said else "")
        if error := _last(events, "error"):  # in --json mode the engine reports errors as events
            reason = str(error.get("message") or reason)
        kind = {2: "config error", 3: "endpoint error"}.get(code, "no result")
        raise AgentError(f"agent {kind} (exit {code}): {reason.removeprefix('fastcode: ')}".rstrip(": "))
    run_id = result.get("run_id") or ""
    trace = repo / ".fastcode" / "runs" / run_id / "trace.jsonl"
    return AgentRun(result, code, trace if run_id and trace.is_file() else None)


def _last(events: Path, kind: str) -> dict | None:
    """The last event of type `kind` the agent printed."""
    for line in reversed(events.read_text(encoding="utf-8", errors="replace").splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == kind:
            return data
    return None


def _script_model(script: Path) -> str:
    try:
        return str(json.loads(script.read_text(encoding="utf-8")).get("model") or "scripted-model")
    except (ValueError, AttributeError):
        return "scripted-model"


def start_scripted_server(script: Path, *, cwd: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`python -m fastcode.testing.scripted_server --script FILE --port 0`; returns it and its base URL."""
    args = [sys.executable, "-m", "fastcode.testing.scripted_server", "--script", str(script), "--port", "0"]
    with log.open("wb") as err:
        proc = procs.start(args, cwd=cwd, env=procs.child_env(), stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    deadline, line = time.monotonic() + SERVER_START_S, b""
    while time.monotonic() < deadline and not line.endswith(b"\n") and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line += proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.readline()
    text = line.decode(errors="replace").strip()
    if not text.startswith("listening on "):
        procs.stop(proc)
        said = procs.tail(log.read_text(errors="replace")) or text or "no output"
        raise AgentError(f"scripted server for {script.name} did not start: {said}")
    return proc, text.removeprefix("listening on ").split()[0]
