"""Secrets stay on this machine: the environment commands and test runs inherit, and masking of secret values.

Every process fastcode starts for the model's sake (the `run` tool, test runs, the warm test runner) gets
`child_environ()`: fastcode's environment without the variables that hold API keys — each model profile's
`api_key_env` and whatever matches `security.env_deny`. A withheld value that still shows up in text headed for the
model, the trace or stdout (a `.env` file read, a key pasted into a test) is replaced by `mask()`. The policy is
process-wide, like the environment it filters; `configure()` sets it from the settings of the run.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping

DEFAULT_DENY = ("*API_KEY*", "*_TOKEN", "*SECRET*", "*PASSWORD*", "*CREDENTIALS*")
_MIN_MASKED = 8
"""Shorter values are not masked: replacing every "1" or "true" in a test log would hide more than it protects."""

_patterns: tuple[str, ...] = DEFAULT_DENY
_names: frozenset[str] = frozenset({"OPENAI_API_KEY"})


def configure(patterns: Iterable[str], key_variables: Iterable[str]) -> None:
    """Withhold variables matching `patterns` (shell-style, any case) and the named key variables."""
    global _patterns, _names
    _patterns = tuple(p.upper() for p in patterns)
    _names = frozenset({"OPENAI_API_KEY", *key_variables})


def withheld(name: str) -> bool:
    upper = name.upper()
    return name in _names or any(fnmatch.fnmatchcase(upper, p) for p in _patterns)


def child_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a command or test run: fastcode's own, minus secrets, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not withheld(k)}
    env.update(extra or {})
    return env


def mask(text: str) -> str:
    """`text` with the value of every withheld variable replaced by `[masked $NAME]`."""
    for name, value in os.environ.items():
        if len(value) >= _MIN_MASKED and withheld(name) and value in text:
            text = text.replace(value, f"[masked ${name}]")
    return text
