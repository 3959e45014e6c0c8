"""`--version` and `--help` stay light: none of the heavy packages is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("openai", "textual", "tree_sitter", "git", "httpx", "jinja2")


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_nothing_heavy(flag: str) -> None:
    code = (
        "import sys\n"
        "from fastcode.cli.main import main\n"
        f"rc = main([{flag!r}])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY [] 0" in out


def test_version_prints_the_version() -> None:
    from fastcode import __version__

    out = subprocess.run([sys.executable, "-m", "fastcode", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"fastcode {__version__}"


def test_unknown_flag_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "fastcode", "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
