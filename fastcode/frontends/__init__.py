"""What a user watches a run in: `headless` (lines or JSONL on stdout, exit codes) and `tui` (the Textual app).
Both only consume the engine's event stream.

May import: `fastcode.agent` and the layers below it. Never `fastcode.cli`.
"""
