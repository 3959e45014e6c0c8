"""Checkpoints, run diffs and undo: `checkpointer` (what a run changed and how to put it back), `git_store` (git
plumbing on private refs) and `copy_store` (file copies where there is no git).

May import: `fastcode.core`.
"""
