"""How tool calls travel between a model and the engine: the tool modes (`native`, `constrained`, `text`), the JSON
schema a constrained server enforces, and the recovery of tool calls a model wrote as text.

May import: `fastcode.models`, `fastcode.tools`, `fastcode.core`. Never the agent loop.
"""

from fastcode.toolcalls.modes import ANY_REPLY, MODES, ReplyShape, ToolMode, resolve_mode
from fastcode.toolcalls.recover import recover_calls

__all__ = ["ANY_REPLY", "MODES", "ReplyShape", "ToolMode", "recover_calls", "resolve_mode"]
