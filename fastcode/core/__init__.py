"""The shared core every layer stands on: the event types (the only engine <-> front-end contract), settings,
where files live (shipped data, run folders, the repo root), prompt templates, the event emitter and the trace.

May import: the standard library and third-party libraries only — nothing else of fastcode.
"""
