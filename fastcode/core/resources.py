"""Where fastcode's files live: the shipped prompts/ and config/ folders (installed or in a checkout) and the
user config file. Standard library only: the fast-start path reads these before anything heavy loads."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # fastcode/


@cache
def data_dir(name: str) -> Path:
    """Return the folder `name` ("prompts", "config" or "evals"): inside the wheel, else at the checkout root."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"fastcode's {name}/ folder is missing from the installation")


def user_config_path() -> Path:
    """~/.config/fastcode/config.toml, or under $XDG_CONFIG_HOME when set."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fastcode" / "config.toml"
