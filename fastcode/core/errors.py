"""One-line errors for the user, and the exit code each comes with (see README, "Exit codes")."""

from __future__ import annotations

import sys

USAGE_ERROR = 2
"""Bad arguments or configuration."""


def fail(message: str, code: int = USAGE_ERROR) -> int:
    """Write `fastcode: message` to stderr and return `code`, for the caller to exit with."""
    sys.stderr.write(f"fastcode: {message}\n")
    return code


READER_GONE = 141
"""The exit code when stdout's reader went away (128 + SIGPIPE), as a shell reports it for `git log | head`."""


def silence_output() -> None:
    """The reader of stdout (or stderr) is gone: point both at /dev/null, so nothing raises again, at exit included."""
    import contextlib
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
