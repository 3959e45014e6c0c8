"""Which repositories may configure what: a repository's own `.fastcode.toml` may change how fastcode behaves, but
the settings that send the user's API key somewhere or run a program (`models.*`, `agent.test_cmd`,
`local.llama_server`, `local.gguf`, `security.*`) or loosen approvals or the sandbox (`agent.approval`,
`sandbox.*`) count only once the user trusts that repository.

The trust list is `trusted.json` next to the user config; `fastcode trust` adds the current repository,
`FASTCODE_TRUST=1` (or `--trust`) trusts the repository for one run. Standard library only: the fast-start path
reads it before anything heavy loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from fastcode.core.resources import user_config_path

GUARDED_PREFIXES = ("models.", "security.", "sandbox.")
GUARDED_KEYS = frozenset(
    {"models", "security", "sandbox", "agent.test_cmd", "agent.approval", "local.llama_server", "local.gguf"}
)
"""Dotted keys a repository file sets only when the repository is trusted (`agent.approval` too: a repository must
not switch the user's approvals off)."""


def guarded(dotted: str) -> bool:
    """True for a key that sends the API key somewhere, runs a program or loosens approvals."""
    return dotted in GUARDED_KEYS or dotted.startswith(GUARDED_PREFIXES)


def trust_file() -> Path:
    return user_config_path().parent / "trusted.json"


def trusted_repos() -> list[str]:
    """The repositories the user trusts (resolved paths); an unreadable list trusts none."""
    try:
        data = json.loads(trust_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    repos = data.get("repos") if isinstance(data, dict) else None
    return [r for r in repos if isinstance(r, str)] if isinstance(repos, list) else []


def env_trusts() -> bool:
    return os.environ.get("FASTCODE_TRUST", "").strip().lower() in ("1", "true", "yes")


def is_trusted(root: Path) -> bool:
    """True when the user trusts `root` (the list, or FASTCODE_TRUST for this run)."""
    return env_trusts() or str(root.resolve()) in trusted_repos()


def set_trusted(root: Path, trusted: bool = True) -> Path:
    """Add `root` to the trust list (or take it out); returns the list's path. Written atomically."""
    repos = [r for r in trusted_repos() if r != str(root.resolve())]
    if trusted:
        repos.append(str(root.resolve()))
    path = trust_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"repos": sorted(repos)}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def ignored_line(path: Path, keys: Iterable[str]) -> str:
    """The one line that says what an untrusted repository file was not allowed to set."""
    names = ", ".join(sorted(keys))
    return (
        f"ignored from {path} (repository not trusted): {names}; "
        "run `fastcode trust` in the repository to honour them, or pass --trust for one run"
    )
