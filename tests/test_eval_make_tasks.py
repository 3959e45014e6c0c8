"""The task generator: AST mutation sites, byte-exact edits, and `make-tasks` producing a suite --gold resolves."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DATA, make_git_repo, run_cli

from fastcode.evals.mutate import candidates, find_mutations

ROOT = Path(__file__).resolve().parents[1]
TEXTKIT = ROOT / "evals" / "suites" / "repos" / "textkit"
FAST = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q"

SOURCE = '''"""Prices — in euros."""

LIMIT = 10


def total(items, start=0, *, strict=False, sep="-"):
    if not items:
        return start
    value = start
    for i in range(len(items) - 1):
        if items[i] >= LIMIT and strict:
            value += pick(items[i], i)
    return value + items[-1:][0] + len("é")
'''


def test_each_operator_finds_sites_and_edits_only_its_bytes() -> None:
    source = SOURCE.encode()
    found = find_mutations("pkg/prices.py", source)
    assert {m.kind for m in found} == {"comparison", "bound", "swap", "branch", "default"}
    descriptions = {m.description for m in found}
    assert {">= -> >", "drop the - 1", "swap arguments of pick()", "drop the `if not items` branch"} <= descriptions
    assert {"default argument 0 -> 1", "default argument False -> True", 'default argument "-" -> "_"'} <= descriptions
    assert "module constant 10 -> 11" in descriptions
    for mutation in found:
        mutated = mutation.apply(source)
        assert mutated[: mutation.start] == source[: mutation.start]
        assert mutated[len(mutated) - (len(source) - mutation.end) :] == source[mutation.end :]
        mutated.decode()  # offsets are bytes: the non-ASCII text above must not shift them
    flip = next(m for m in found if m.description == ">= -> >")
    assert b"if items[i] > LIMIT and strict:" in flip.apply(source)
    assert find_mutations("broken.py", b"def (:\n") == []


def test_candidate_order_depends_only_on_the_seed(tmp_path: Path) -> None:
    first = [m.key for m in candidates(TEXTKIT, seed=3)]
    assert first == [m.key for m in candidates(TEXTKIT, seed=3)]
    assert first != [m.key for m in candidates(TEXTKIT, seed=4)]
    assert sorted(first) == sorted(m.key for m in candidates(TEXTKIT, seed=4))
    # Spread out: operator kinds take turns, and within a kind, functions take turns.
    order = candidates(TEXTKIT, seed=3)
    kinds = {m.kind for m in order}
    assert len(kinds) == 5 and {m.kind for m in order[:5]} == kinds
    comparisons = [m for m in order if m.kind == "comparison"][:3]
    assert len({(m.path, m.scope) for m in comparisons}) == 3


def test_make_tasks_is_deterministic_and_gold_resolves_its_suite(tmp_path: Path, isolated_env: dict) -> None:
    def make(name: str):
        args = ["eval", "make-tasks", str(TEXTKIT), "--n", "4", "--seed", "7", "--out", str(tmp_path / name)]
        return run_cli([*args, "--test-cmd", FAST], cwd=tmp_path, env=isolated_env)

    made = make("a.jsonl")
    assert made.returncode == 0, made.stderr
    assert "kept 4 of" in made.stderr
    assert make("b.jsonl").returncode == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()

    instances = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(instances) == 4 and len({i["instance_id"] for i in instances}) == 4
    for instance in instances:
        assert 1 <= len(instance["FAIL_TO_PASS"]) <= 10 and instance["PASS_TO_PASS"]
        assert instance["base_has_fix"] and instance["patch"].startswith("diff --git a/textkit/")
        assert not Path(instance["repo_path"]).is_absolute()
        changed = instance["patch"].split()[2].removeprefix("a/")
        assert changed not in instance["problem_statement"]
        assert instance["FAIL_TO_PASS"][0] in instance["problem_statement"]

    out = tmp_path / "out"
    gold = run_cli(
        ["eval", str(tmp_path / "a.jsonl"), "--gold", "--workers", "2", "--out", str(out)],
        cwd=tmp_path,
        env=isolated_env,
    )
    assert gold.returncode == 0, gold.stderr
    assert json.loads((out / "summary.json").read_text())["resolved_pct"] == 100.0


def test_make_tasks_on_a_git_repo_pins_the_commit(tmp_path: Path, isolated_env: dict) -> None:
    repo = make_git_repo(TEXTKIT, tmp_path / "textkit")
    suite = tmp_path / "suites" / "git.jsonl"
    args = ["eval", "make-tasks", str(repo), "--n", "2", "--seed", "1", "--out", str(suite), "--test-cmd", FAST]
    made = run_cli(args, cwd=tmp_path, env=isolated_env)
    assert made.returncode == 0, made.stderr
    instances = [json.loads(line) for line in suite.read_text().splitlines()]
    assert all(len(i["base_commit"]) == 40 and i["repo_path"] == "../textkit" for i in instances)
    gold = run_cli(["eval", str(suite), "--gold", "--out", str(tmp_path / "out")], cwd=tmp_path, env=isolated_env)
    assert gold.returncode == 0, gold.stderr


def test_make_tasks_needs_passing_tests(tmp_path: Path, isolated_env: dict) -> None:
    args = ["eval", "make-tasks", str(DATA / "sample_repo"), "--n", "2", "--out", str(tmp_path / "x.jsonl")]
    result = run_cli(args, cwd=tmp_path, env=isolated_env)
    assert result.returncode == 2
    assert "the tests must pass first: 2 fail, e.g. tests/test_stats.py::" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
