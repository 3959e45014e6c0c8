"""Checkpoints, run diffs and undo: `checkpointer` (what a run changed and how to put it back), `git_store` (git
plumbing on private refs), `copy_store` (file copies where there is no git) and `scratch` (a throwaway copy of the
repository where candidate fixes are tried).

May import: `fastcode.core`.
"""
