"""Rebuild a hand-written suite (the bundled one) from its fixed trees and bug descriptions.

    python -m fastcode.evals.authoring evals/suites/bundled.toml      # writes evals/suites/bundled.jsonl

The TOML lists instances; each names a fixed tree under `repos/`, the edits that inject its bug (`old` -> `new`,
each matching exactly once) and the test functions only the fixed version passes (`hidden_tests`, removed from the
start state and shipped as `test_patch`). The builder makes `patch` and `test_patch` with git, then runs the tests
before and after the fix the way the harness does, and takes FAIL_TO_PASS and PASS_TO_PASS from what it saw.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from fastcode.evals.instances import Instance, dump_instance, parse_instance
from fastcode.evals.scoring import PASSING, run_tests
from fastcode.evals.workspace import IGNORED, Workspace, git


class AuthoringError(Exception):
    pass


def is_test_path(path: str) -> bool:
    parts = path.split("/")
    return "tests" in parts[:-1] or parts[-1].startswith("test_") or parts[-1] == "conftest.py"


def remove_test(root: Path, test_id: str) -> None:
    """Delete one test function (decorators and the blank lines before it included) from its file."""
    file, *names = test_id.split("::")
    path = root / file
    text = path.read_text(encoding="utf-8")
    body: list[ast.stmt] = ast.parse(text).body
    node: ast.stmt | None = None
    for name in names:
        node = next((n for n in body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name), None)
        if node is None:
            raise AuthoringError(f"{test_id}: no {name} in {file}")
        body = node.body
    assert node is not None and node.end_lineno is not None
    lines = text.splitlines(keepends=True)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    while start > 0 and not lines[start - 1].strip():
        start -= 1
    path.write_text("".join(lines[:start] + lines[node.end_lineno :]), encoding="utf-8")


def make_patches(tree: Path, entry: dict[str, Any], work: Path) -> tuple[str, str]:
    """(patch, test_patch): from the buggy start state to the fixed tree."""
    shutil.copytree(tree, work, ignore=shutil.ignore_patterns(*IGNORED))
    git(work, "init", "--quiet")
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", "fixed")
    for edit in entry.get("bug", []):
        path = work / edit["file"]
        text = path.read_text(encoding="utf-8")
        if text.count(edit["old"]) != 1:
            raise AuthoringError(
                f"{entry['instance_id']}: {edit['file']} has {text.count(edit['old'])} copies of {edit['old']!r}"
            )
        path.write_text(text.replace(edit["old"], edit["new"]), encoding="utf-8")
    for test_id in entry.get("hidden_tests", []):
        remove_test(work, test_id)
    git(work, "commit", "--quiet", "--all", "-m", "start state")
    changed = git(work, "diff", "--name-only", "HEAD", "HEAD~1").split()
    sources = [p for p in changed if not is_test_path(p)]
    tests = [p for p in changed if is_test_path(p)]
    patch = git(work, "diff", "HEAD", "HEAD~1", "--", *sources) if sources else ""
    test_patch = git(work, "diff", "HEAD", "HEAD~1", "--", *tests) if tests else ""
    return patch, test_patch


def observe(instance: Instance, scratch: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Test statuses at the start state with the hidden tests, then with the gold patch too."""
    ws = Workspace.create(instance, scratch / "repo")
    ws.apply(instance.test_patch, what="test_patch")
    before = run_tests(instance.test_cmd, ws.path, scratch=scratch, timeout_s=300, log=scratch / "before.log")
    ws.apply(instance.patch, what="patch")
    after = run_tests(instance.test_cmd, ws.path, scratch=scratch, timeout_s=300, log=scratch / "after.log")
    return before.statuses, after.statuses


def build_instance(suite_dir: Path, entry: dict[str, Any], test_cmd: str) -> Instance:
    tree = suite_dir / "repos" / entry["repo"]
    with tempfile.TemporaryDirectory(prefix="fastcode-authoring-") as tmp:
        patch, test_patch = make_patches(tree, entry, Path(tmp) / "work")
        fields = {k: v for k, v in entry.items() if k not in ("bug", "hidden_tests")}
        fields["problem_statement"] = entry["problem_statement"].strip() + "\n"
        data = fields | {
            "repo_path": f"repos/{entry['repo']}",
            "base_has_fix": True,
            "test_cmd": test_cmd,
            "patch": patch,
            "test_patch": test_patch,
        }
        instance = parse_instance(data, base=suite_dir)
        before, after = observe(instance, Path(tmp))
    broken = sorted(i for i, s in after.items() if s not in PASSING)
    if broken:
        raise AuthoringError(f"{entry['instance_id']}: tests fail with the fix applied: {broken}")
    f2p = sorted(i for i in after if before.get(i) not in PASSING)
    p2p = sorted(i for i in after if before.get(i) in PASSING)
    if missing := [t for t in entry.get("hidden_tests", []) if t not in f2p]:
        raise AuthoringError(f"{entry['instance_id']}: hidden tests pass without the fix: {missing}")
    if extra := [t for t in f2p if t not in entry.get("hidden_tests", [])]:
        print(f"note: {entry['instance_id']}: visible tests also fail before the fix: {extra}", file=sys.stderr)
    instance.FAIL_TO_PASS, instance.PASS_TO_PASS = f2p, p2p
    instance.repo_path = f"repos/{entry['repo']}"
    return instance


def build(spec_path: Path) -> Path:
    spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    suite_dir = spec_path.resolve().parent
    out = spec_path.with_suffix(".jsonl")
    lines = []
    for entry in spec["instance"]:
        instance = build_instance(suite_dir, entry, spec["test_cmd"])
        lines.append(dump_instance(instance) + "\n")
        print(
            f"{instance.instance_id}: {len(instance.FAIL_TO_PASS)} fail-to-pass, "
            f"{len(instance.PASS_TO_PASS)} pass-to-pass",
            file=sys.stderr,
        )
    out.write_text("".join(lines), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastcode.evals.authoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help="the suite's TOML description")
    args = parser.parse_args(argv)
    try:
        out = build(args.spec)
    except AuthoringError as exc:
        print(f"authoring: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
