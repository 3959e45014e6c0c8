"""The command line: `main` parses arguments and dispatches (lazy imports keep `--version` instant), `run` starts
a run headless or in the TUI, `basic` holds config / trace / undo, `serve` and `eval` their commands.

The top layer: may import anything below it; nothing imports it.
"""
