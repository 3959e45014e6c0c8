"""The sandbox for the commands the agent runs (the `run` tool, test runs): what they may write and reach.

`policy` turns the `[sandbox]` settings into a `Sandbox` (what this platform enforces, the private temporary
directory, the spec each child applies); `confine` is the kernel side, applied in the child just before exec.
"""
