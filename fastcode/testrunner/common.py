"""What the parent's side of the runner shares: the runner script's path and the error that means "fall back"."""

from __future__ import annotations

from pathlib import Path

SERVER = Path(__file__).with_name("server.py")
"""The runner process's script (stdlib and pytest only), run by the test command's interpreter."""


class RunnerError(Exception):
    """The warm runner could not serve a run; the message is the note shown beside the subprocess fallback."""
