"""Stamps events (run id, sequence number, monotonic time), appends them to the trace file and queues them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, TextIO, TypeVar

from fastcode.core.events import Event
from fastcode.core.safe_text import clean_value

E = TypeVar("E", bound=Event)


class Emitter:
    """The engine's single way out: every event goes to the trace file first, then to the consumer's queue."""

    def __init__(self, run_id: str, trace_path: Path, queue: asyncio.Queue[Event | None]) -> None:
        self.run_id = run_id
        self.queue = queue
        self._seq = 0
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        self._trace: TextIO = trace_path.open("a", encoding="utf-8")

    def __call__(self, cls: type[E], **fields: Any) -> E:
        self._seq += 1
        event = cls(run_id=self.run_id, seq=self._seq, t=time.perf_counter(), **fields)
        try:
            line = event.model_dump_json()
        except ValueError:  # lone surrogates from a model or a file name: no UTF-8 writer takes them
            event = cls(run_id=self.run_id, seq=self._seq, t=event.t, **clean_value(fields))
            line = event.model_dump_json()
        self._trace.write(line + "\n")
        self._trace.flush()
        self.queue.put_nowait(event)
        return event

    def close(self) -> None:
        self._trace.close()
        self.queue.put_nowait(None)
