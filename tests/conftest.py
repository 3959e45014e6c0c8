"""Shared fixtures: a git copy of the sample repo, a scripted server, and running the real `fastcode` CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fastcode.testing import ScriptedServer

DATA = Path(__file__).parent / "data"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def make_git_repo(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.email", "dev@example.com")
    git(dest, "config", "user.name", "Dev")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "initial")
    return dest


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """A fresh git repository holding tests/data/sample_repo (its test_moving_sum_covers_every_window fails)."""
    return make_git_repo(DATA / "sample_repo", tmp_path / "sample")


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment with no user config, no API keys and the venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FASTCODE_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    # What runs remember of endpoints (prefill rates, batching) stays with the test: a later test's scripted server
    # may get the same port.
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CI", None)
    for key in list(os.environ):
        if key.startswith(("OPENAI_", "FASTCODE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    # Each test's environment differs, so a kept-alive warm test runner would be one more per test: exit with fastcode.
    env["FASTCODE_AGENT__TEST_RUNNER_KEEP_ALIVE"] = "0"
    monkeypatch.setenv("FASTCODE_AGENT__TEST_RUNNER_KEEP_ALIVE", "0")
    return env


def load_script(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """`scripted(script_dict, **options)` starts a scripted server; all are stopped after the test."""
    servers: list[ScriptedServer] = []

    def start(script: dict, **options: Any) -> ScriptedServer:
        server = ScriptedServer(script, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run_cli(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120, wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """`python -m fastcode ARGS` (behind `wrapper`, a command that execs its arguments, when given)."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "fastcode", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
