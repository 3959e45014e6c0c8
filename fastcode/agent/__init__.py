"""The agent loop and what only it uses: `engine` (the session and its plan/act loop), `router` (which model a
step goes to, when a finish is accepted, when a run is stuck), `tool_exec` (tool calls run with approvals and
early starts), `edit_first` (the first replies that may only edit), `search` (test-time
search: candidate fixes the tests choose among), `prefix` (prompt-cache discipline).

May import: `fastcode.context`, `fastcode.launcher`, `fastcode.toolcalls`, `fastcode.testrunner`, `fastcode.models`,
`fastcode.tools`, `fastcode.checkpoint`, `fastcode.core`. Never a front end or the CLI.
"""
