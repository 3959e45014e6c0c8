"""The eval harness behind `fastcode eval`: SWE-bench-style instances run in throwaway copies, scored by their tests.

instances (the JSONL format) -> workspace (a temporary git copy at the start state) -> runner (setup, the agent in its
own process or the gold patch, then scoring) -> harness (a pool of workers, progress, resume) -> report (predictions,
results, summary). ray_pool runs instances as Ray tasks (`--ray`), shipping repositories and output folders as bytes
(shipping). mutate + make_tasks generate instances by injecting bugs; authoring rebuilds the bundled suite.

May import: `fastcode.core` (the agent runs as its own process, `fastcode exec`).
"""
