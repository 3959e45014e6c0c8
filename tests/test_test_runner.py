"""The warm test runner: same output and exit code as a subprocess run, fresh repo code each run, `select`, falling
back when a plugin fails to import, dying with its parent (keep-alive 0), kept alive for later processes otherwise,
and killing a run's process group. Real processes only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from fastcode.context import testcmd
from fastcode.core.config import ConfigError, load_settings
from fastcode.testrunner import Invocation, pytest_invocation, runner_for
from fastcode.tools.shell import run_command

PYTEST = f"{shlex.quote(sys.executable)} -m pytest"
CALC = "def add(a, b):\n    return a + b\n"
CASES = {
    "passing": {"test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n"},
    "failing": {
        "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n\n\n"
        "def test_wrong():\n    print('some output')\n    assert add(2, 2) == 5\n"
    },
    "erroring": {
        "test_calc.py": "import pytest\n\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError('no fixture')\n\n\n"
        "def test_uses(broken):\n    pass\n"
    },
    "collection error": {"test_calc.py": "from calc import missing_name\n\n\ndef test_x():\n    pass\n"},
}
SLEEPER = """import subprocess, sys, time
from pathlib import Path


def test_sleeps():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path("grandchild.pid").write_text(str(child.pid))
    time.sleep(120)
"""


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "calc.py").write_text(CALC)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def normalized(output: str) -> str:
    return re.sub(r"\bin \d+\.\d+s\b", "in Xs", output)


def gone(pid: int) -> bool:
    """The process no longer exists (or is a zombie waiting for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_until(condition, limit_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


async def same_as_subprocess(command: str, root: Path, **kw: object) -> testcmd.TestResult:
    """Run warm, then as a subprocess; both must agree. Returns the warm result."""
    warm = await testcmd.run_tests(command, root, **kw)  # type: ignore[arg-type]
    exit_code, output = await run_command(command, root, timeout_s=kw.get("timeout_s", 300.0), max_chars=12_000)  # type: ignore[arg-type]
    assert (warm.runner, warm.note) == ("warm", "")
    assert warm.exit_code == exit_code
    assert normalized(warm.output) == normalized(output)
    return warm


@pytest.fixture(autouse=True)
def _stop_runners(monkeypatch: pytest.MonkeyPatch) -> object:
    cache = Path(tempfile.mkdtemp(prefix="fc"))  # short: the runners' unix sockets live there
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    yield
    testcmd.shutdown()
    for state in (cache / "fastcode" / "testrunners").glob("*.json"):  # kept-alive runners this test started
        with contextlib.suppress(OSError, ValueError):
            os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
    shutil.rmtree(cache, ignore_errors=True)


def runners_folder() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "fastcode" / "testrunners"


@pytest.mark.parametrize("case", list(CASES))
async def test_output_and_exit_code_match_a_subprocess_run(tmp_path: Path, case: str) -> None:
    root = make_repo(tmp_path / "repo", CASES[case])
    testcmd.prestart(PYTEST, root)
    result = await same_as_subprocess(PYTEST, root)
    assert result.exit_code == {"passing": 0, "failing": 1, "erroring": 1, "collection error": 2}[case]
    assert "rootdir:" in result.output  # the header (platform, plugins) is part of what must match
    quiet = await same_as_subprocess(f"{PYTEST} -q -x", root)
    assert quiet.passed is (case == "passing")


async def test_pytest_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "pytest"
    if not script.exists():
        pytest.skip("no pytest console script next to the interpreter")
    root = make_repo(tmp_path / "repo", CASES["failing"])
    invocation = pytest_invocation(f"{script} -q", root)
    assert isinstance(invocation, Invocation) and invocation.script == str(script)
    await same_as_subprocess(f"{script} -q", root)


async def test_timeout_matches_and_kills_the_process_group(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"test_sleep.py": SLEEPER})
    warm = await testcmd.run_tests(f"{PYTEST} -q", root, timeout_s=5)
    assert (warm.runner, warm.exit_code, warm.passed) == ("warm", None, False)
    grandchild = int((root / "grandchild.pid").read_text())
    assert wait_until(lambda: gone(grandchild)), "the test's own child survived the timeout"
    (root / "grandchild.pid").unlink()
    exit_code, output = await run_command(f"{PYTEST} -q", root, timeout_s=5, max_chars=12_000)
    assert exit_code is None and normalized(output) == normalized(warm.output)
    assert wait_until(lambda: gone(int((root / "grandchild.pid").read_text())))


async def test_interrupt_kills_the_process_group(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"test_sleep.py": SLEEPER})
    task = asyncio.create_task(testcmd.run_tests(f"{PYTEST} -q", root, timeout_s=120))
    pid_file = root / "grandchild.pid"
    while not pid_file.exists() or not pid_file.read_text():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_until(lambda: gone(int(pid_file.read_text())))
    again = await testcmd.run_tests(f"{PYTEST} -q", root, timeout_s=120, select=["test_sleep.py::nothing"])
    assert again.runner == "warm" and again.exit_code == 4  # the same runner serves the next run


async def test_an_edited_file_is_seen_by_the_next_run(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", CASES["passing"])
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    invocation = pytest_invocation(PYTEST, root)
    assert isinstance(invocation, Invocation)
    testcmd.prestart(PYTEST, root)
    pid = runner_for(invocation, root.resolve()).pid
    first = await testcmd.run_tests(PYTEST, root)
    assert (first.runner, first.passed) == ("warm", False)
    (root / "calc.py").write_text(CALC + "\n\n# fixed\n")
    second = await testcmd.run_tests(PYTEST, root)
    assert (second.runner, second.passed) == ("warm", True)
    assert runner_for(invocation, root.resolve()).pid == pid


async def test_select_runs_only_the_given_node_ids(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", CASES["failing"])
    warm = await testcmd.run_tests(f"{PYTEST} -q", root, select=["test_calc.py::test_add"])
    assert (warm.runner, warm.passed) == ("warm", True) and "1 passed" in warm.output
    assert warm.command == f"{PYTEST} -q test_calc.py::test_add"
    testcmd.prestart(f"{PYTEST} -q", root, runner="subprocess")
    cold = await testcmd.run_tests(f"{PYTEST} -q", root, select=["test_calc.py::test_add"])
    assert (cold.runner, cold.note, cold.passed) == ("subprocess", "", True)
    assert normalized(cold.output) == normalized(warm.output)
    other = await testcmd.run_tests("echo hi", root, select=["test_calc.py::test_add"])
    assert (other.command, other.output.strip(), other.runner, other.note) == ("echo hi", "hi", "subprocess", "")


def write_plugin(folder: Path, name: str, source: str) -> None:
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{name} = {name}\n")
    (info / "RECORD").write_text(f"{name}.py,,\n")
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


async def test_installed_plugins_are_preloaded_and_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = tmp_path / "plugins"
    source = """\
        import warnings

        warnings.warn("goodplug says hello at import")


        def pytest_report_header(config):
            return "goodplug header"
        """
    write_plugin(plugins, "goodplug", source)
    monkeypatch.setenv("PYTHONPATH", str(plugins))
    root = make_repo(tmp_path / "repo", CASES["failing"])
    result = await same_as_subprocess(PYTEST, root)
    assert "goodplug header" in result.output and "goodplug says hello" in result.output


async def test_a_plugin_that_fails_to_import_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "brokenplug", "raise ImportError('broken on purpose')\n")
    monkeypatch.setenv("PYTHONPATH", str(plugins))
    root = make_repo(tmp_path / "repo", CASES["passing"])
    testcmd.prestart(PYTEST, root)
    result = await testcmd.run_tests(PYTEST, root)
    assert result.runner == "subprocess" and "brokenplug" in result.note and "broken on purpose" in result.note
    exit_code, output = await run_command(PYTEST, root, timeout_s=300, max_chars=12_000)
    assert (result.exit_code, normalized(result.output)) == (exit_code, normalized(output))
    again = await testcmd.run_tests(PYTEST, root)
    assert (again.runner, again.note) == ("subprocess", result.note)


async def test_a_crashed_test_process_is_run_again_as_a_subprocess(tmp_path: Path) -> None:
    crash = "import os, signal\n\n\ndef test_crash():\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    root = make_repo(tmp_path / "repo", {"test_crash.py": crash})
    result = await testcmd.run_tests(f"{PYTEST} -q -p no:faulthandler", root)
    assert result.runner == "subprocess" and "signal 11" in result.note
    exit_code, output = await run_command(f"{PYTEST} -q -p no:faulthandler", root, timeout_s=300, max_chars=12_000)
    assert (result.exit_code, normalized(result.output)) == (exit_code, normalized(output))


async def test_the_runner_exits_when_its_socket_closes(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", CASES["passing"])
    invocation = pytest_invocation(PYTEST, root)
    assert isinstance(invocation, Invocation)
    runner = runner_for(invocation, root.resolve(), keep_alive_s=0)
    await runner.wait_ready()
    runner.sock.close()
    assert runner.proc.wait(timeout=60) == 0  # it left by itself: not killed


PARENT = """
import asyncio, sys
from pathlib import Path
from fastcode.context import testcmd

root = Path(sys.argv[1])
testcmd.prestart(sys.argv[2], root, keep_alive_s=0)
from fastcode.testrunner import pytest_invocation, runner_for
runner = runner_for(pytest_invocation(sys.argv[2], root), root.resolve())
print(runner.pid, flush=True)
asyncio.run(testcmd.run_tests(sys.argv[2], root, timeout_s=300))
"""


def test_the_runner_and_its_run_die_with_fastcode(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"test_sleep.py": SLEEPER})
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(root), f"{PYTEST} -q"], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)  # fmt: skip
    try:
        runner = int(parent.stdout.readline())  # type: ignore[union-attr]
        pid_file = root / "grandchild.pid"
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 120)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: gone(runner)), "the runner outlived fastcode"
        assert wait_until(lambda: gone(int(pid_file.read_text()))), "the run outlived fastcode"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


ONE_RUN = """
import asyncio, json, sys
from pathlib import Path
from fastcode.context import testcmd
from fastcode.testrunner import pytest_invocation, runner_for

root = Path(sys.argv[1]).resolve()
testcmd.prestart(sys.argv[2], root, keep_alive_s=float(sys.argv[3]))
result = asyncio.run(testcmd.run_tests(sys.argv[2], root, timeout_s=300))
pid = runner_for(pytest_invocation(sys.argv[2], root), root).pid
print(json.dumps({"runner": result.runner, "note": result.note, "pid": pid, "output": result.output}))
"""


def one_run(root: Path, keep_alive_s: float, env: dict[str, str] | None = None, command: str = f"{PYTEST} -q") -> dict:
    """One test run in a new fastcode-like process; its result and the runner's pid. Its environment is this
    process's os.environ exactly (the runner key hashes it; pytest leaves the C-level one slightly different)."""
    argv = [sys.executable, "-c", ONE_RUN, str(root), command, str(keep_alive_s)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env or dict(os.environ), check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def state_pid() -> int:
    (state,) = runners_folder().glob("*.json")
    return int(json.loads(state.read_text())["pid"])


def test_a_new_process_reuses_the_kept_alive_runner(tmp_path: Path) -> None:
    first = one_run(make_repo(tmp_path / "repo", CASES["failing"]), 60)
    assert (first["runner"], first["note"]) == ("warm", "") and "1 failed, 1 passed" in first["output"]
    assert not gone(first["pid"]) and state_pid() == first["pid"]  # it outlived the process that started it
    second = one_run(make_repo(tmp_path / "other", CASES["passing"]), 60)  # another repo, same interpreter
    assert (second["runner"], second["pid"]) == ("warm", first["pid"]) and "1 passed" in second["output"]


def test_the_kept_alive_runner_exits_when_idle(tmp_path: Path) -> None:
    first = one_run(make_repo(tmp_path / "repo", CASES["passing"]), 1)
    assert first["runner"] == "warm"
    assert wait_until(lambda: gone(first["pid"]), 60), "the runner did not stop once idle"
    assert not list(runners_folder().glob("*.json")) and not list(runners_folder().glob("*.sock"))
    again = one_run(tmp_path / "repo", 1)
    assert again["runner"] == "warm" and again["pid"] != first["pid"]


def test_a_changed_plugin_set_starts_a_new_runner(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "goodplug", "def pytest_report_header(config):\n    return 'goodplug header'\n")
    env = {**os.environ, "PYTHONPATH": str(plugins)}
    root = make_repo(tmp_path / "repo", CASES["passing"])
    first = one_run(root, 60, env, PYTEST)
    assert first["runner"] == "warm" and "goodplug header" in first["output"]
    write_plugin(plugins, "otherplug", "def pytest_report_header(config):\n    return 'otherplug header'\n")
    second = one_run(root, 60, env, PYTEST)
    assert (second["runner"], second["note"]) == ("warm", "") and second["pid"] != first["pid"]
    assert "otherplug header" in second["output"]
    assert wait_until(lambda: gone(first["pid"])), "the stale runner stayed up"
    assert state_pid() == second["pid"]


def test_keep_alive_0_exits_with_the_process(tmp_path: Path) -> None:
    first = one_run(make_repo(tmp_path / "repo", CASES["passing"]), 0)
    assert first["runner"] == "warm"
    assert wait_until(lambda: gone(first["pid"])), "the runner outlived its process"
    assert not list(runners_folder().glob("*.json"))


async def test_a_run_while_another_process_runs_falls_back(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"test_sleep.py": SLEEPER})
    task = asyncio.create_task(testcmd.run_tests(f"{PYTEST} -q", root, timeout_s=120))
    pid_file = root / "grandchild.pid"
    while not pid_file.exists() or not pid_file.read_text():
        await asyncio.sleep(0.05)
    other = one_run(make_repo(tmp_path / "other", CASES["passing"]), 60)
    assert other["runner"] == "subprocess" and "busy" in other["note"] and "1 passed" in other["output"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_until(lambda: gone(int(pid_file.read_text())))


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("python -m pytest -x -q", ("-x", "-q")),
        ("python3 -m pytest tests/test_a.py -k 'not slow'", ("tests/test_a.py", "-k", "not slow")),
        ("python -m pytest -q | tail -5", "shell syntax"),
        ("cd sub && python -m pytest", "shell syntax"),
        ("PYTHONPATH=src python -m pytest", "environment variables"),
        ("python -m pytest > log.txt", "shell syntax"),
        ("python -W error -m pytest", "options to python"),
        ("python -m pytest --assert=plain", "assertion mode"),
        ("tox -e py311 -- pytest", "not `python -m pytest`"),
        ("npm test --silent", ""),
        ("go test ./...", ""),
        ("cargo test -q", ""),
    ],
)
def test_which_commands_run_warm(tmp_path: Path, command: str, expected: object) -> None:
    if isinstance(expected, tuple) and shutil.which(command.split()[0]) is None:
        pytest.skip(f"{command.split()[0]} is not on PATH")
    found = pytest_invocation(command, tmp_path)
    if isinstance(expected, tuple):
        assert isinstance(found, Invocation) and found.args == expected and found.script == ""
    else:
        assert isinstance(found, str) and expected in found and (found == "") == (expected == "")


def test_test_runner_setting(tmp_path: Path) -> None:
    assert load_settings(tmp_path).settings.agent.test_runner == "auto"
    loaded = load_settings(tmp_path, overrides=["agent.test_runner=subprocess"])
    assert loaded.settings.agent.test_runner == "subprocess"
    with pytest.raises(ConfigError, match=r"agent\.test_runner"):
        load_settings(tmp_path, overrides=["agent.test_runner=warmest"])
