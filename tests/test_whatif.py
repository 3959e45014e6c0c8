"""Issue 14: `fastcode trace whatif` — a recorded run under another latency model, checked against a hand-computed
trace and against a real scripted run replayed under its own latency model (within 5%)."""

from __future__ import annotations

import re

import pytest
from conftest import run_cli

from fastcode.core.events import (
    ModelCallFinished,
    ModelCallStarted,
    RunFinished,
    RunStarted,
    ToolFinished,
    ToolStarted,
)
from fastcode.core.trace import build
from fastcode.core.whatif import PROFILES, LatencyModel, replay


def _events() -> list:
    common = {"run_id": "r", "profile": "default", "model": "m", "route": "plan"}
    n = iter(range(100))

    def at(cls, t, **fields):
        return cls(seq=next(n), t=t, **{k: v for k, v in common.items() if k in cls.model_fields}, **fields)

    return [
        at(RunStarted, 100.0, task="t", repo="/r", started_at="2026-12-04T00:00:00+00:00"),
        at(ModelCallStarted, 100.5, call_id="1", step=1, base_url="u"),
        at(ModelCallFinished, 101.5, call_id="1", step=1, prompt_tokens=1000, cached_tokens=0, completion_tokens=50),
        at(ToolStarted, 101.5, tool_id="a", step=1, name="read_file", arguments={}),
        at(ToolFinished, 101.7, tool_id="a", step=1, name="read_file", ok=True, output="", ms=200),
        at(ModelCallStarted, 101.7, call_id="2", step=2, base_url="u"),
        at(ModelCallFinished, 102.2, call_id="2", step=2, prompt_tokens=1100, cached_tokens=1000, completion_tokens=20),
        at(RunFinished, 102.3, status="finished", wall_s=2.3),
    ]


def test_a_hand_computed_trace() -> None:
    result = replay(build(_events()), PROFILES["fast"])
    # call 1: 0.15 + 1000/5000 + 50/200 = 0.60 s (recorded 1.0); call 2: 0.15 + 100/5000 + 20/200 = 0.27 s (0.5)
    assert [(s.step, s.recorded_s, s.predicted_s) for s in result.steps] == [(1, 1.0, 0.6), (2, 0.5, 0.27)]
    assert result.recorded_wall_s == 2.3 and result.predicted_wall_s == pytest.approx(1.67)
    slow = replay(build(_events()), LatencyModel(ttft_ms=0, decode_tps=10, prefill_tps=100, cached_factor=0.5))
    # call 1: 10 + 5 = 15 s; call 2: (100 + 500)/100 + 2 = 8 s
    assert slow.predicted_wall_s == pytest.approx(2.3 - 1.5 + 23)


def test_a_scripted_run_replayed_under_its_own_latency_model(sample_repo, isolated_env, scripted) -> None:
    read = {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]}
    finish = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done " * 40}}]}
    latency = {"ttft_ms": 150, "decode_tps": 200, "prefill_tps": 5000}
    server = scripted({"turns": [read, read, finish], "latency": latency})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", "-c", "agent.edit_first='never'",
            "-c", "context.enabled=false", "-c", "agent.auto_test=false", "-c", "agent.warmup='never'"]  # fmt: skip
    assert run_cli(args, cwd=sample_repo, env=isolated_env).returncode == 0
    same = ["trace", "whatif", "--ttft-ms", "150", "--tps", "200", "--prefill-tps", "5000"]
    result = run_cli(same, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    recorded, predicted = map(float, re.search(r"wall\s+([\d.]+) s\s+([\d.]+) s", result.stdout).groups())
    assert abs(predicted - recorded) <= 0.05 * recorded, result.stdout
    cpu = run_cli(["trace", "whatif", "--profile", "cpu"], cwd=sample_repo, env=isolated_env)
    slower = float(re.search(r"wall\s+[\d.]+ s\s+([\d.]+) s", cpu.stdout).group(1))
    assert slower > 3 * recorded
    assert run_cli(["trace", "whatif"], cwd=sample_repo, env=isolated_env).returncode == 2


def test_whatif_inputs_are_checked_one_flag_at_a_time(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", "-c", "context.enabled=false"]
    assert run_cli(args, cwd=sample_repo, env=isolated_env).returncode == 0
    (run,) = (sample_repo / ".fastcode" / "runs").iterdir()
    for bad, named in ((["--profile", "cpu", "--cached-factor", "-1"], "--cached-factor"),
                       (["--ttft-ms", "-5", "--tps", "10", "--prefill-tps", "10"], "--ttft-ms"),
                       (["--ttft-ms", "5", "--tps", "0", "--prefill-tps", "10"], "--tps")):  # fmt: skip
        result = run_cli(["trace", "whatif", *bad], cwd=sample_repo, env=isolated_env)
        assert result.returncode == 2 and named in result.stderr, result.stderr
    plain = run_cli(["trace", "whatif", "--profile", "cpu", run.name], cwd=sample_repo, env=isolated_env)
    cached = run_cli(["trace", "whatif", "--profile", "cpu", "--cached-factor", "1", run.name], cwd=sample_repo,
                     env=isolated_env)  # fmt: skip
    assert plain.returncode == cached.returncode == 0 and plain.stdout != cached.stdout
