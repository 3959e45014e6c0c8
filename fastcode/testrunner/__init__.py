"""The warm test runner: pytest runs forked from a process that has already imported pytest and its plugins.

`command` decides whether a test command is a plain pytest invocation and which interpreter it names; `server` is
the runner process itself (stdlib and pytest only, run as a script by that interpreter); `client` talks to one
runner over a unix socket (tiny JSON lines); `pool` keeps the live runners, one per interpreter, repo and
environment; `shared` finds or starts a kept-alive runner (`server_hub`) that outlives fastcode until idle.
`fastcode.context.testcmd.run_tests` is the entry point the engine uses: it falls back to a subprocess run whenever
a runner cannot serve a run. `common` holds the runner script's path and RunnerError.

May import: `fastcode.tools` (the command result type), `fastcode.core`.
"""

from fastcode.testrunner.client import RunnerError, WarmRunner
from fastcode.testrunner.command import Invocation, pytest_invocation
from fastcode.testrunner.pool import prestart, run, runner_for, shutdown

__all__ = ["Invocation", "RunnerError", "WarmRunner", "prestart", "pytest_invocation", "run", "runner_for", "shutdown"]
