"""Test and benchmark helpers shipped with the package: the scripted OpenAI-compatible server.

May import: the standard library only, like `fastcode.core` (it stands beside the models it imitates).
"""

from fastcode.testing.script import Latency, Script, ScriptedError, ScriptedToolCall, Turn
from fastcode.testing.scripted_server import ScriptedServer, canonical_prompt

__all__ = [
    "Latency",
    "Script",
    "ScriptedError",
    "ScriptedServer",
    "ScriptedToolCall",
    "Turn",
    "canonical_prompt",
]
