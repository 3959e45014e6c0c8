"""The repo map: tree-sitter definitions of the files most relevant to the task, within a token budget.

Relevance: a file named in the task or the traceback counts most, then files changed in the working tree, then
files whose path or definitions share identifiers with the task. Definitions are cached in
`.fastcode/repomap.json`, keyed by path + mtime + size, so a second run parses only what changed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from fastcode.core.paths import STATE_DIR, own_git_environ, own_program
from fastcode.tools.base import inside_repo
from fastcode.tools.symbols import Definition, definitions, language_for

CACHE_FILE = "repomap.json"
MAX_FILES = 2000
MAX_FILE_BYTES = 256_000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def task_terms(text: str) -> set[str]:
    """Identifiers of the task, lower-cased, split on snake_case and CamelCase too."""
    terms: set[str] = set()
    for word in _WORD.findall(text):
        terms.add(word.lower())
        for part in re.split(r"_|(?<=[a-z])(?=[A-Z])", word):
            if len(part) >= 3:
                terms.add(part.lower())
    return terms - {"the", "and", "for", "with", "that", "this", "test", "tests", "fix", "failing", "fails"}


def list_files(root: Path) -> list[str]:
    """Tracked and untracked-not-ignored files (git), else a walk that skips hidden folders."""
    try:
        out = subprocess.run(
            [own_program("git") or "git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=root,
            env=own_git_environ(),
            capture_output=True,
            timeout=10,
            check=True,
        ).stdout
        files = [p for p in out.decode("utf-8", "replace").split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
            files.extend(Path(folder, n).relative_to(root).as_posix() for n in names)
    return sorted(f for f in files if not f.startswith(STATE_DIR + "/"))[:MAX_FILES]


def changed_files(root: Path) -> set[str]:
    """Files modified or added in the working tree (git status), which the task most likely concerns."""
    try:
        status = [own_program("git") or "git", "status", "--porcelain", "-z", "--untracked-files=all"]
        out = subprocess.run(status, cwd=root, env=own_git_environ(), capture_output=True, timeout=10,
                             check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return set()
    entries = out.decode("utf-8", "replace").split("\0")
    return {entry[3:] for entry in entries if len(entry) > 3 and not entry[3:].startswith(STATE_DIR + "/")}


class DefinitionCache:
    """path -> (mtime, size, definitions), persisted under .fastcode/."""

    def __init__(self, root: Path) -> None:
        self.path = root / STATE_DIR / CACHE_FILE
        self.entries: dict[str, list] = {}
        self.dirty = False
        try:
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def get(self, root: Path, rel: str) -> list[Definition]:
        target = inside_repo(root, rel)  # a symlink out of the repository shows nothing
        if target is None:
            return []
        try:
            stat = target.stat()
        except OSError:
            return []
        key = [stat.st_mtime_ns, stat.st_size]
        cached = self.entries.get(rel)
        if cached and cached[:2] == key:
            return [Definition(*d) for d in cached[2]]
        found = [] if stat.st_size > MAX_FILE_BYTES else definitions(target)
        self.entries[rel] = [*key, [[d.kind, d.name, d.start_line, d.end_line, d.parent] for d in found]]
        self.dirty = True
        return found

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries), encoding="utf-8")
            os.replace(tmp, self.path)


def _score(rel: str, defs: list[Definition], terms: set[str], mentioned: set[str], changed: set[str]) -> float:
    score = 0.0
    if rel in mentioned or any(rel.endswith("/" + m) for m in mentioned):
        score += 100
    if rel in changed:
        score += 20
    path_words = task_terms(rel.replace("/", " ").replace(".", " "))
    score += 5 * len(path_words & terms)
    score += sum(2 for d in defs if d.name.lower() in terms)
    if "test" in rel.lower():
        score -= 0.5
    return score


def build_repo_map(root: Path, task: str, *, budget_tokens: int, mentioned: set[str], changed: set[str]) -> str:
    """Render the map: the best files first, each with its definitions, until the budget is spent."""
    if budget_tokens <= 0:
        return ""
    terms = task_terms(task)
    cache = DefinitionCache(root)
    files = [f for f in list_files(root) if language_for(Path(f)) is not None]
    scored = []
    for rel in files:
        defs = cache.get(root, rel)
        scored.append((-_score(rel, defs, terms, mentioned, changed), rel, defs))
    cache.save()
    scored.sort()
    budget_chars = budget_tokens * 4
    lines: list[str] = []
    used = 0
    for _, rel, defs in scored:
        block = [f"{rel}:"] + [
            f"  {'  ' if d.parent else ''}{d.kind} {d.name} L{d.start_line}-{d.end_line}" for d in defs[:40]
        ]
        size = sum(len(line) + 1 for line in block)
        if used + size > budget_chars:
            if used + len(rel) + 2 <= budget_chars:  # at least name the file
                lines.append(f"{rel}")
                used += len(rel) + 1
            continue
        lines.extend(block)
        used += size
    return "\n".join(lines)
