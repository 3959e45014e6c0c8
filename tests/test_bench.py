"""`fastcode bench` runs end to end and prints every figure with its target (figures are not asserted here)."""

from __future__ import annotations

from conftest import run_cli


def test_bench_prints_every_agent_figure(tmp_path, isolated_env) -> None:
    result = run_cli(["bench", "--runs", "1", "--only", "agent"], cwd=tmp_path, env=isolated_env, timeout=300)
    assert result.returncode == 0, result.stderr
    for figure in ("case study wall time", "case study model calls", "first request on the wire",
                   "served from cache", "engine overhead per step", "all runs finished"):  # fmt: skip
        assert figure in result.stdout
    assert (
        "all runs finished" in result.stdout and "NO" not in result.stdout.split("all runs finished")[1].split("\n")[0]
    )
