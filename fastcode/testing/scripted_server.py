"""The scripted OpenAI-compatible server: real HTTP on 127.0.0.1 for tests and benchmarks.

Serves `/v1/chat/completions` (plain and SSE), `/v1/models` and `/health`, playing a script
(`fastcode.testing.script`) through a fake prefix cache and a latency model, so traces show realistic TTFT,
cached tokens and decode rates. Standard library and pydantic only:
importing it never pulls in openai or httpx. `python -m fastcode.testing.scripted_server --script FILE` serves
in the foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from fastcode.testing.answer import Answer
from fastcode.testing.script import Latency, Script, Turn

_KEPT_PROMPTS = 32
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def canonical_prompt(body: dict[str, Any]) -> str:
    """The prompt as the fake tokenizer sees it: tools, then each message, as sorted compact JSON."""
    parts = [body.get("tools") or [], *(body.get("messages") or [])]
    return "".join(json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for p in parts)


def schema_reply(body: dict[str, Any]) -> bool:
    """The request asks for a reply constrained by a JSON schema (fastcode's constrained tool mode)."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


def _assistant_text(turn: Turn, calls: list[tuple[str, str, str]]) -> str:
    """The answer as a client re-sends it in the next request's history (fastcode's and OpenAI's message shape)."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}} for cid, name, args in calls
        ]
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _new_conversation(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    return not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages)


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo] and a[:hi+1] != b[:hi+1]
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if a[:mid] == b[:mid] else (lo, mid - 1)
    return lo


def _error_body(status: int, message: str, type_: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = type_ or _ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes must not wait for delayed ACKs
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        self.server.owner._get(self)

    def do_POST(self) -> None:
        self.server.owner._post(self)

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedServer:
    """A fake OpenAI-compatible endpoint that plays a script over real HTTP."""

    def __init__(
        self,
        script: Script | dict[str, Any] | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: Latency | None = None,
        flavor: Literal["openai", "llamacpp", "vllm"] = "openai",
        replay: bool = False,
    ) -> None:
        self.script = Script.load(script)
        self.replay = replay
        """Play the script again from the top for each new run: at its warm-up, or, once the script is used up, at a
        request that starts a new conversation (the command line's default, so a demo can be repeated; tests want
        "exhausted")."""
        self.latency = latency or self.script.latency
        self.flavor = flavor
        """What the answers carry beyond OpenAI's fields: llama.cpp `timings`, or vLLM per-request `metrics`."""
        self.host, self.port = host, port
        self.requests: list[dict[str, Any]] = []
        """Every JSON body received on /v1/chat/completions, in order, warm-ups included."""
        self.arrivals: list[float] = []
        """Wall-clock time (time.time()) each of those requests arrived, for start-up benchmarks."""
        self._lock = threading.Lock()
        self._consumed = [False] * len(self.script.turns)
        self._prompts: dict[str, list[str]] = {}
        self._served = 0
        self._calls = 0
        self._conns: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def bind(self) -> _Server:
        """Open the listening socket (fixes `port`) without serving yet; `start` and the CLI call it."""
        if self._httpd is None:
            self._httpd = _Server((self.host, self.port), _Handler)
            self._httpd.owner = self
            self.port = self._httpd.server_address[1]
        return self._httpd

    def start(self) -> ScriptedServer:
        """Serve in a daemon thread."""
        httpd = self.bind()
        if self._thread is None:
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.02},
                daemon=True,
                name="scripted-server",
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        with self._lock:
            for conn in self._conns:  # kept-alive connections would otherwise outlive the server
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ScriptedServer is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def remaining(self) -> int:
        """Scripted turns not yet consumed."""
        with self._lock:
            return self._consumed.count(False)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # endpoints

    def _authorized(self, h: _Handler) -> bool:
        key = self.script.require_api_key
        if key is None or h.headers.get("Authorization") == f"Bearer {key}":
            return True
        h.send_json(401, _error_body(401, "Incorrect API key provided", code="invalid_api_key"))
        return False

    def _get(self, h: _Handler) -> None:
        path = h.path.split("?")[0].rstrip("/")
        if path == "/health":
            h.send_json(200, {"status": "ok"})
        elif path == "/v1/models":
            if self._authorized(h):
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "scripted"}
                    for m in self.script.model_names()
                ]
                h.send_json(200, {"object": "list", "data": data})
        else:
            h.send_json(404, _error_body(404, f"no route for GET {path}"))

    def _post(self, h: _Handler) -> None:
        arrived = time.time()
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if h.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            h.send_json(404, _error_body(404, f"no route for POST {h.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            h.send_json(400, _error_body(400, "request body is not a JSON object"))
            return
        with self._lock:
            self.requests.append(body)
            self.arrivals.append(arrived)
        if self._authorized(h):
            self._chat(h, body, time.perf_counter())

    def _chat(self, h: _Handler, body: dict[str, Any], t0: float) -> None:
        model = str(body.get("model") or self.script.model)
        if self.script.strict_models and model not in self.script.model_names():
            h.send_json(404, _error_body(404, f"The model `{model}` does not exist", code="model_not_found"))
            return
        warmup = 1 in (body.get("max_tokens"), body.get("max_completion_tokens"))
        prompt = canonical_prompt(body)
        with self._lock:
            served = self._served
            if self.replay and (warmup or (all(self._consumed) and _new_conversation(body))):
                self._consumed = [False] * len(self.script.turns)  # a new run (its warm-up), or a new conversation
            turn = None if warmup else self._next_turn(model)
            if turn is not None and turn.tool_calls and (schema_reply(body) or turn.text_format):
                turn = turn.as_text("json" if schema_reply(body) else str(turn.text_format))
            more: list[Turn] = []
            n = body.get("n") if isinstance(body.get("n"), int) else 1
            while turn is not None and turn.error is None and self.script.supports_n and len(more) < n - 1:
                extra = self._next_turn(model)
                if extra is None or extra.error is not None:
                    break
                more.append(extra.as_text("json") if extra.tool_calls and schema_reply(body) else extra)
            if warmup or turn is not None:
                self._served += 1
            answered = warmup or (turn is not None and turn.error is None)
            cached_chars = self._remember(model, prompt) if answered else 0
            calls = self._call_ids(turn) if answered else []
            if answered and turn is not None and self.latency.cache_completions:
                self._prompts[model].append(prompt + _assistant_text(turn, calls))
        if turn is None and not warmup:
            msg = f"scripted server: script exhausted ({served} requests served)"
            h.send_json(400, _error_body(400, msg, code="script_exhausted"))
        elif turn is not None and turn.error is not None:
            err = turn.error
            h.send_json(err.status, _error_body(err.status, err.message, err.type, err.code))
        else:
            serial = served + 1
            answer = Answer(self.latency, self.flavor, h, body, model, turn, calls, prompt, cached_chars, t0, serial)
            answer.add_choices(more, self.latency)
            answer.send()

    # state (callers hold the lock)

    def _next_turn(self, model: str) -> Turn | None:
        for i, turn in enumerate(self.script.turns):
            if not self._consumed[i] and turn.model in (None, model):
                self._consumed[i] = True
                return turn
        return None

    def _remember(self, model: str, prompt: str) -> int:
        """Characters of `prompt` an earlier prompt to the same model shares (the fake prefix cache)."""
        earlier = self._prompts.setdefault(model, [])
        cached_chars = max((_common_prefix(prompt, p) for p in earlier), default=0)
        earlier.append(prompt)
        del earlier[:-_KEPT_PROMPTS]
        return cached_chars

    def _call_ids(self, turn: Turn | None) -> list[tuple[str, str, str]]:
        calls = []
        for call in turn.tool_calls if turn else []:
            self._calls += 1
            calls.append((f"call_{self._calls}", call.name, call.arguments_text()))
        return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastcode.testing.scripted_server", description=__doc__)
    parser.add_argument("--script", required=True, help="script JSON file, or a directory with script.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ttft-ms", type=float)
    parser.add_argument("--prefill-tps", type=float)
    parser.add_argument("--decode-tps", type=float)
    parser.add_argument("--cached-prefill-factor", type=float)
    parser.add_argument("--flavor", choices=["openai", "llamacpp", "vllm"], default="openai")
    parser.add_argument("--once", action="store_true", help="play the script once, then answer 'script exhausted'")
    args = parser.parse_args(argv)
    script = Script.load(Path(args.script))
    fields = ("ttft_ms", "prefill_tps", "decode_tps", "cached_prefill_factor")
    given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    latency = script.latency.model_copy(update=given)
    server = ScriptedServer(script, host=args.host, port=args.port, latency=latency, flavor=args.flavor,
                            replay=not args.once)  # fmt: skip
    httpd = server.bind()
    print(f"listening on {server.base_url}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
