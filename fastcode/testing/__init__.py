"""Test and benchmark helpers shipped with the package: the scripted OpenAI-compatible server."""

from fastcode.testing.scripted_server import (
    Latency,
    Script,
    ScriptedError,
    ScriptedServer,
    ScriptedToolCall,
    Turn,
    canonical_prompt,
)

__all__ = [
    "Latency",
    "Script",
    "ScriptedError",
    "ScriptedServer",
    "ScriptedToolCall",
    "Turn",
    "canonical_prompt",
]
