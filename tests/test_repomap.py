"""The repo map: relevant files first, within the token budget, definitions cached by mtime."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git

from fastcode.context.repomap import build_repo_map, changed_files, task_terms


def _repo(tmp_path: Path) -> Path:
    for name in ("billing", "shipping", "users"):
        (tmp_path / f"{name}.py").write_text(f"class {name.title()}Service:\n    def run(self):\n        pass\n")
    (tmp_path / "invoice_totals.py").write_text("def compute_invoice_total(lines):\n    return sum(lines)\n")
    git(tmp_path, "init", "-q")
    return tmp_path


def test_task_terms_split_identifiers() -> None:
    assert {"computeinvoicetotal", "compute", "invoice", "total"} <= task_terms("computeInvoiceTotal is wrong")
    assert "fix" not in task_terms("fix the failing test")


def test_relevant_files_come_first_and_the_budget_holds(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    text = build_repo_map(
        root, "compute_invoice_total adds tax twice", budget_tokens=30, mentioned=set(), changed=set()
    )
    assert text.splitlines()[0] == "invoice_totals.py:"
    assert "function compute_invoice_total L1-2" in text
    assert len(text) <= 30 * 4


def test_changed_and_mentioned_files_rank_high(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    git(root, "add", "-A")
    git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    (root / "users.py").write_text((root / "users.py").read_text() + "# edited\n")
    changed = changed_files(root)
    assert changed == {"users.py"}
    text = build_repo_map(root, "something", budget_tokens=500, mentioned={"shipping.py"}, changed=changed)
    assert text.splitlines()[0] == "shipping.py:"
    assert text.index("users.py:") < text.index("billing.py:")


def test_definitions_are_cached_by_mtime(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    build_repo_map(root, "x", budget_tokens=500, mentioned=set(), changed=set())
    cache = json.loads((root / ".fastcode/repomap.json").read_text())
    assert cache["billing.py"][2][0][:2] == ["class", "BillingService"]
    (root / "billing.py").write_text("def only_function():\n    pass\n")
    text = build_repo_map(root, "x", budget_tokens=500, mentioned=set(), changed=set())
    assert "only_function" in text and "BillingService" not in text
