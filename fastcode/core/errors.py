"""One-line errors for the user, and the exit code each comes with (see README, "Exit codes")."""

from __future__ import annotations

import sys

USAGE_ERROR = 2
"""Bad arguments or configuration."""


def fail(message: str, code: int = USAGE_ERROR) -> int:
    """Write `fastcode: message` to stderr and return `code`, for the caller to exit with."""
    sys.stderr.write(f"fastcode: {message}\n")
    return code
