"""Suite files: parsing, validation, broken lines, and the bundled suite's own invariants."""

from __future__ import annotations

import json
from pathlib import Path

from fastcode.evals.instances import BrokenLine, Instance, load_suite
from fastcode.evals.workspace import patch_paths
from fastcode.testing import Script

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "evals" / "suites" / "bundled.jsonl"
SCRIPTED = ROOT / "evals" / "suites" / "scripted"


def _write(path: Path, *lines: object) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_swe_bench_fields_parse_and_paths_resolve_against_the_suite(tmp_path: Path) -> None:
    suite = _write(
        tmp_path / "suite.jsonl",
        {
            "instance_id": "demo__demo-1",
            "problem_statement": "it breaks",
            "repo_path": "repos/demo",
            "FAIL_TO_PASS": '["tests/test_a.py::test_x"]',  # SWE-bench stores the lists as JSON text
            "PASS_TO_PASS": ["tests/test_a.py::test_y"],
            "test_cmd": "python -m pytest",
            "setup": "pip install -e .",
            "version": "1.0",  # unknown SWE-bench fields are kept, not rejected
        },
    )
    (entry,) = load_suite(suite)
    assert isinstance(entry, Instance)
    assert entry.repo_path == str(tmp_path / "repos" / "demo")
    assert entry.FAIL_TO_PASS == ["tests/test_a.py::test_x"]
    assert entry.setup == ["pip install -e ."]
    assert entry.base_commit is None and entry.base_has_fix is False
    assert entry.model_extra == {"version": "1.0"}


def test_broken_lines_become_errors_for_their_instance(tmp_path: Path) -> None:
    good = {"instance_id": "ok-1", "problem_statement": "p", "repo_path": ".", "test_cmd": "pytest"}
    suite = _write(
        tmp_path / "suite.jsonl",
        good,
        "{not json",
        {"instance_id": "no-statement", "repo_path": "."},
        {"instance_id": "bad id with spaces", "problem_statement": "p", "repo_path": "."},
        "",
        good,
    )
    entries = load_suite(suite)
    assert [type(e).__name__ for e in entries] == ["Instance", *["BrokenLine"] * 4]
    broken = [e for e in entries if isinstance(e, BrokenLine)]
    assert broken[0].instance_id == "line-2" and "not valid JSON" in broken[0].error
    assert broken[1].instance_id == "no-statement" and "problem_statement" in broken[1].error
    assert broken[2].instance_id == "line-4" and "instance_id" in broken[2].error
    assert broken[3].instance_id == "line-6" and "duplicate instance_id 'ok-1'" in broken[3].error


def test_bundled_suite_covers_three_repos_with_hidden_tests_and_clean_statements() -> None:
    entries = load_suite(BUNDLED)
    assert all(isinstance(e, Instance) for e in entries)
    instances = [e for e in entries if isinstance(e, Instance)]
    assert len(instances) >= 12
    assert len({Path(i.repo_path).name for i in instances}) >= 3
    kinds = {i.model_extra["kind"] for i in instances}
    assert {"off-by-one", "wrong comparison", "missing edge case", "wrong default", "two-file fix"} <= kinds
    for instance in instances:
        assert instance.base_has_fix and instance.patch and instance.test_patch and instance.FAIL_TO_PASS
        assert not (Path(instance.repo_path) / ".git").exists()
        # A user's report: the symptom, never where the fix goes.
        for path in patch_paths(instance.patch):
            assert path not in instance.problem_statement, (instance.instance_id, path)
    assert any(len(patch_paths(i.patch)) == 2 for i in instances)


def test_scripted_trajectories_exist_for_bundled_instances() -> None:
    ids = {e.instance_id for e in load_suite(BUNDLED)}
    scripts = sorted(SCRIPTED.glob("*.json"))
    assert len(scripts) >= 3
    for script in scripts:
        assert script.stem in ids
        assert Script.load(script).turns[-1].tool_calls[-1].name == "finish"
