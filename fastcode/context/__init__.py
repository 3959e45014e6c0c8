"""Context gathered in parallel before the first call: `gather` (git, repo map, search, the code the task names,
the failing test run), `repomap` (tree-sitter definitions, ranked), `budget` (what fits the first call's prefill
time on this endpoint) and `testcmd` (finding and running the repo's tests).

May import: `fastcode.testrunner`, `fastcode.tools`, `fastcode.core`.
"""
