"""Running an instance's tests and deciding whether it is resolved.

The test command runs with `PYTEST_ADDOPTS` asking pytest for a junit XML file (outside the copy) and the `-rA`
summary, so any command that ends up running pytest reports every test id's status. Statuses are read from the
junit file, and from the summary lines for anything the file lacks.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from fastcode.evals.procs import child_env, run_shell

PASSING = frozenset({"passed", "xfailed", "xpassed"})
_SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS)\s+(\S.*?)\s*$")
_WORST = ("error", "failed", "skipped", "xpassed", "xfailed", "passed")
NOT_RUN_CODES = {4: "pytest usage error", 126: "not executable", 127: "command not found"}
"""Exit codes meaning the test command itself is broken (when no test reported a status)."""


def _merge(statuses: dict[str, str], test_id: str, status: str) -> None:
    """A test can report twice (a teardown error after a pass): keep the worse status."""
    old = statuses.get(test_id)
    if old is None or _WORST.index(status) < _WORST.index(old):
        statuses[test_id] = status


def parse_summary(output: str) -> dict[str, str]:
    """Statuses from pytest's `-rA` short summary (PASSED/FAILED/ERROR/XFAIL/XPASS lines)."""
    names = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "XFAIL": "xfailed", "XPASS": "xpassed"}
    statuses: dict[str, str] = {}
    for line in output.splitlines():
        if not (match := _SUMMARY.match(line)):
            continue
        kind, rest = match.groups()
        test_id = rest
        if " - " in rest:  # "FAILED id - message": the id ends at the first " - " outside brackets
            depth = 0
            for i, char in enumerate(rest):
                depth += (char == "[") - (char == "]")
                if depth == 0 and rest.startswith(" - ", i):
                    test_id = rest[:i]
                    break
        _merge(statuses, test_id, names[kind])
    return statuses


def _node_id(case: ET.Element, root: Path | None) -> str:
    name, classname, file = case.get("name", ""), case.get("classname", ""), case.get("file")
    parts = classname.split(".") if classname else []
    if file:
        module = file.removesuffix(".py").replace("/", ".").split(".")
        return "::".join([file, *parts[len(module) :], name])
    for cut in range(len(parts), 0, -1):  # no file attribute (xunit2): find where the module path ends
        candidate = "/".join(parts[:cut]) + ".py"
        if root is None or (root / candidate).is_file():
            return "::".join([candidate, *parts[cut:], name])
    return name


def parse_junit(path: Path, root: Path | None = None) -> dict[str, str]:
    """Statuses from a pytest junit XML file (missing or broken file: none)."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return {}
    statuses: dict[str, str] = {}
    for case in tree.iter("testcase"):
        status = "passed"
        for child in case:
            if child.tag == "error":
                status = "error"
            elif child.tag == "failure" and status != "error":
                status = "failed"
            elif child.tag == "skipped" and status == "passed":
                status = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        _merge(statuses, _node_id(case, root), status)
    return statuses


def failure_texts(path: Path, root: Path | None = None) -> dict[str, str]:
    """Test id -> its failure or error text from a junit file (the traceback pytest printed)."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return {}
    texts = {}
    for case in tree.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                texts[_node_id(case, root)] = (child.text or child.get("message") or "").strip()
    return texts


@dataclass
class TestRun:
    exit_code: int | None
    statuses: dict[str, str]
    output: str
    seconds: float
    junit: Path

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    def broken_command(self) -> str | None:
        """Why the command ran no tests at all, when that is the command's fault."""
        if self.statuses or self.exit_code not in NOT_RUN_CODES:
            return None
        return f"test_cmd failed to run ({NOT_RUN_CODES[self.exit_code]}, exit {self.exit_code})"


def run_tests(command: str, root: Path, *, scratch: Path, timeout_s: float, log: Path) -> TestRun:
    """Run `command` in `root`, collecting per-test statuses; junit goes to `scratch` (outside the repo)."""
    junit = scratch / "junit.xml"
    junit.unlink(missing_ok=True)
    for cache in root.rglob("__pycache__"):  # stale bytecode from the agent's own test runs
        shutil.rmtree(cache, ignore_errors=True)
    env = child_env()
    options = f"-rA --junitxml={junit} -o junit_family=xunit1 -p no:cacheprovider"
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {options}".strip()
    done = run_shell(command, cwd=root, env=env, timeout_s=timeout_s, log=log)
    statuses = parse_summary(done.output)
    statuses.update(parse_junit(junit, root))
    return TestRun(done.exit_code, statuses, done.output, done.seconds, junit)


@dataclass
class Grade:
    resolved: bool
    fail_to_pass: tuple[int, int]
    """(passed, total)."""
    pass_to_pass: tuple[int, int]
    failing: list[str] = field(default_factory=list)
    """FAIL_TO_PASS and PASS_TO_PASS ids that did not pass (status or "missing")."""


def grade(statuses: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str]) -> Grade:
    """Resolved when every listed id passed (xfail and xpass count as passing, as in SWE-bench)."""

    def ok(ids: list[str]) -> int:
        return sum(statuses.get(i) in PASSING for i in ids)

    failing = [
        f"{i} ({statuses.get(i, 'missing')})" for i in [*fail_to_pass, *pass_to_pass] if statuses.get(i) not in PASSING
    ]
    total = len(fail_to_pass) + len(pass_to_pass)
    return Grade(
        resolved=total > 0 and not failing,
        fail_to_pass=(ok(fail_to_pass), len(fail_to_pass)),
        pass_to_pass=(ok(pass_to_pass), len(pass_to_pass)),
        failing=failing,
    )
