"""Scoring: per-test statuses from pytest's -rA summary and junit XML, and the resolved rule."""

from __future__ import annotations

from pathlib import Path

from fastcode.evals.scoring import grade, parse_junit, parse_summary, run_tests

SUMMARY = """\
..F.sx                                                                   [100%]
=================================== FAILURES ===================================
___________________________________ test_bad ___________________________________
E   assert 1 == 2
=========================== short test summary info ============================
PASSED tests/test_a.py::test_ok
PASSED tests/test_a.py::TestK::test_p[a b - c]
PASSED tests/test_a.py::test_teardown_breaks
SKIPPED [1] tests/test_a.py:9: not today
XFAIL tests/test_a.py::test_xf - known bug
XPASS tests/test_a.py::test_xp
ERROR tests/test_a.py::test_teardown_breaks - RuntimeError: boom
ERROR tests/test_b.py - ImportError: no module named nope
FAILED tests/test_a.py::test_bad - assert 1 == 2
FAILED tests/test_a.py::TestK::test_p[2 - 1] - assert 2 != 2
3 failed, 3 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors in 0.05s
"""

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.sub.test_a" name="test_ok" file="tests/sub/test_a.py" line="1" time="0.0" />
<testcase classname="tests.sub.test_a" name="test_bad" file="tests/sub/test_a.py" line="2" time="0.0">
  <failure message="assert 1 == 2">E   assert 1 == 2</failure></testcase>
<testcase classname="tests.sub.test_a.TestK.TestInner" name="test_i[x - y]" file="tests/sub/test_a.py" line="7" />
<testcase classname="tests.sub.test_a" name="test_skip" file="tests/sub/test_a.py">
  <skipped type="pytest.skip" message="no">no</skipped></testcase>
<testcase classname="tests.sub.test_a" name="test_xf" file="tests/sub/test_a.py">
  <skipped type="pytest.xfail" message="" /></testcase>
<testcase classname="tests.sub.test_a" name="test_err" file="tests/sub/test_a.py">
  <error message="fixture 'nope' not found">E  fixture 'nope' not found</error></testcase>
<testcase classname="tests.test_c" name="test_no_file_attribute" />
</testsuite></testsuites>
"""


def test_summary_lines_give_node_ids_and_the_worst_status_wins() -> None:
    statuses = parse_summary(SUMMARY)
    assert statuses == {
        "tests/test_a.py::test_ok": "passed",
        "tests/test_a.py::TestK::test_p[a b - c]": "passed",
        "tests/test_a.py::test_teardown_breaks": "error",
        "tests/test_a.py::test_xf": "xfailed",
        "tests/test_a.py::test_xp": "xpassed",
        "tests/test_b.py": "error",
        "tests/test_a.py::test_bad": "failed",
        "tests/test_a.py::TestK::test_p[2 - 1]": "failed",
    }


def test_junit_rebuilds_node_ids_with_nested_classes(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(JUNIT)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_c.py").write_text("")
    statuses = parse_junit(tmp_path / "junit.xml", tmp_path)
    assert statuses == {
        "tests/sub/test_a.py::test_ok": "passed",
        "tests/sub/test_a.py::test_bad": "failed",
        "tests/sub/test_a.py::TestK::TestInner::test_i[x - y]": "passed",
        "tests/sub/test_a.py::test_skip": "skipped",
        "tests/sub/test_a.py::test_xf": "xfailed",
        "tests/sub/test_a.py::test_err": "error",
        "tests/test_c.py::test_no_file_attribute": "passed",
    }
    assert parse_junit(tmp_path / "missing.xml") == {}


def test_resolved_only_when_every_listed_test_passes() -> None:
    statuses = {"a": "passed", "b": "xfailed", "c": "failed", "d": "skipped"}
    ok = grade(statuses, ["a"], ["b"])
    assert ok.resolved and ok.fail_to_pass == (1, 1) and ok.failing == []
    bad = grade(statuses, ["a", "c"], ["b", "d", "gone"])
    assert not bad.resolved
    assert bad.fail_to_pass == (1, 2) and bad.pass_to_pass == (1, 3)
    assert bad.failing == ["c (failed)", "d (skipped)", "gone (missing)"]
    assert not grade(statuses, [], []).resolved


def test_run_tests_reads_statuses_from_a_real_pytest_run(tmp_path: Path) -> None:
    repo, scratch = tmp_path / "repo", tmp_path / "scratch"
    (repo / "tests").mkdir(parents=True)
    scratch.mkdir()
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (repo / "tests" / "test_x.py").write_text(
        "import pytest\n\ndef test_pass():\n    pass\n\ndef test_fail():\n    assert 1 == 2\n\n"
        "@pytest.mark.parametrize('v', [1, 2])\ndef test_param(v):\n    assert v == 1\n"
    )
    run = run_tests("python -m pytest -q -x", repo, scratch=scratch, timeout_s=60, log=scratch / "log")
    # -x stops at the first failure: the tests after it never report, so they count as missing.
    assert run.statuses == {"tests/test_x.py::test_pass": "passed", "tests/test_x.py::test_fail": "failed"}
    run = run_tests("python -m pytest -q", repo, scratch=scratch, timeout_s=60, log=scratch / "log")
    assert run.statuses["tests/test_x.py::test_param[2]"] == "failed"
    assert run.statuses["tests/test_x.py::test_param[1]"] == "passed"
    assert not (repo / ".pytest_cache").exists()
    missing = run_tests("no-such-command-here", repo, scratch=scratch, timeout_s=60, log=scratch / "log")
    assert missing.broken_command() == "test_cmd failed to run (command not found, exit 127)"
