"""A misbehaving endpoint for fault tests: each request gets the next canned answer, byte for byte.

An answer is a callable that writes to the raw socket file (status line, headers, body, pauses), so a test can send
what no well-behaved server would: HTML, garbage in an event stream, keep-alive comments forever, a non-HTTP banner.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

Answer = Callable[[BinaryIO], None]


def http(status: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
    def write(out: BinaryIO) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        out.write(head.encode() + body)

    return write


def sse(*events: bytes | float, forever: bytes | None = None, every_s: float = 0.2) -> Answer:
    """An event stream: byte strings are written as they are, floats are pauses; then `forever` repeats."""

    def write(out: BinaryIO) -> None:
        out.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        out.flush()
        for event in events:
            if isinstance(event, float):
                time.sleep(event)
            else:
                out.write(event)
                out.flush()
        while forever is not None:
            out.write(forever)
            out.flush()
            time.sleep(every_s)

    return write


def data(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


def chunk(content: str = "", tool: tuple[str, str] | None = None, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {"content": content} if content else {}
    if tool:
        delta["tool_calls"] = [{"index": 0, "id": "c1", "type": "function",
                                "function": {"name": tool[0], "arguments": tool[1]}}]  # fmt: skip
    return data({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip


FINISH_STREAM = sse(chunk(tool=("finish", '{"summary": "done"}'), finish="tool_calls"), b"data: [DONE]\n\n")


def progress(processed: int, total: int = 4000) -> bytes:
    """llama.cpp's report on the prompt it is prefilling (`return_progress`): a chunk without a token."""
    return data({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}],
                 "prompt_progress": {"total": total, "cache": 0, "processed": processed, "time_ms": 0}})  # fmt: skip


def raw(banner: bytes) -> Answer:
    """Not HTTP at all: a banner, then the connection closes."""
    return lambda out: out.write(banner)


def hang(seconds: float = 600) -> Answer:
    return lambda out: time.sleep(seconds)


class RawEndpoint:
    """Serves `answers` in order (the last one repeats) on 127.0.0.1; counts chat requests. Other routes get a 404,
    or `others` (a hung server hangs on every route)."""

    def __init__(self, answers: list[Answer], others: Answer | None = None) -> None:
        self.answers, self.others = answers, others
        self.requests = 0
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline()
                if not line:
                    return
                length = 0
                while (header := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":")[1])
                self.rfile.read(length)
                answer = owner.next_answer(line)
                try:
                    answer(self.wfile)
                    self.wfile.flush()
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def next_answer(self, request_line: bytes) -> Answer:
        if b"/chat/completions" not in request_line:
            if self.others is not None:
                return self.others
            return http(404, "application/json", b'{"error": {"message": "no such route"}}')
        index = min(self.requests, len(self.answers) - 1)
        self.requests += 1
        return self.answers[index]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> RawEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class BannerServer(RawEndpoint):
    """Another service on the port: it greets every connection with a non-HTTP banner before reading anything."""

    def __init__(self, banner: bytes = b"SSH-2.0-OpenSSH_9.2\r\n") -> None:
        super().__init__([])
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner.requests += 1
                self.request.recv(65536)  # the HTTP request; the reply is what the service says to anything
                self.request.sendall(banner)

        self.server.RequestHandlerClass = Handler
