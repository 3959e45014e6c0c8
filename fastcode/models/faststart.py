"""Fast start: put the first request on the wire within milliseconds of process start.

`import openai` alone takes 1-3 s here, and pydantic, jinja2 and the engine add more. So before any of that,
`begin()` (called by the CLI for run commands) reads just enough config with tomllib to find the plan route's
endpoint, and — when a warm-up is due — sends it from a thread using the system prompt and tool schemas cached
on disk by the previous run (`prefix-<hash>.json` under ~/.cache/fastcode). The engine later `take()`s the early
warm-up instead of sending its own, and starts `import openai` in a thread while it gathers context. Stdlib only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import tomllib
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from fastcode import __version__
from fastcode.core.paths import cache_root
from fastcode.models.wire import is_loopback

_early: dict[str, tuple[Future[Any], list[dict[str, Any]], list[dict[str, Any]]]] = {}
_preloading = False


def target_key(base_url: str, model: str) -> str:
    return f"{base_url.rstrip('/')}|{model}"


def _prefix_file() -> Path:
    from fastcode.core.resources import data_dir

    system = (data_dir("prompts") / "system.md.j2").read_bytes()
    tools_dir = Path(__file__).parent / "tools"
    stamp = "".join(f"{p.name}{p.stat().st_mtime_ns}" for p in sorted(tools_dir.glob("*.py")))
    digest = hashlib.sha256(system + stamp.encode() + __version__.encode()).hexdigest()[:16]
    return cache_root() / f"prefix-{digest}.json"


def save_prefix(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
    """Remember the stable prefix for the next process's early warm-up (called by the engine)."""
    try:
        path = _prefix_file()
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"messages": messages, "tools": tools}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _load_prefix() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    try:
        data = json.loads(_prefix_file().read_text(encoding="utf-8"))
        return data["messages"], data["tools"]
    except (OSError, ValueError, KeyError):
        return None


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _light_config(argv: list[str]) -> dict[str, Any]:
    """The layers that decide the plan endpoint, read without pydantic (validation happens later, for real)."""
    from fastcode.core.paths import find_repo_root
    from fastcode.core.resources import data_dir, user_config_path
    from fastcode.core.trust import is_trusted

    root = find_repo_root(Path(_flag(argv, "--repo") or "."))
    repo_trusted = "--trust" in argv or is_trusted(root)
    layers = [
        (data_dir("config") / "default.toml", True),
        (user_config_path(), True),
        (root / ".fastcode.toml", repo_trusted),
    ]
    merged: dict[str, Any] = {}
    for path, trusted in layers:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if not trusted:  # an untrusted repository may not name the endpoint the key is sent to
            data.pop("models", None)
        for section, values in data.items():
            if isinstance(values, dict):
                target = merged.setdefault(section, {})
                for key, value in values.items():
                    target[key] = {**target.get(key, {}), **value} if isinstance(value, dict) else value
    return merged


def _plan_target(argv: list[str]) -> tuple[str, str, str, str] | None:
    """(base_url, model, api key, warmup policy) of the plan route, or None when it cannot be told cheaply."""
    if "--local" in argv or any(a == "-c" or a.startswith("-c") for a in argv):
        return None  # -c may change anything: leave it to the real config load
    config = _light_config(argv)
    profile_name = config.get("routes", {}).get("plan", "default")
    profile = dict(config.get("models", {}).get(profile_name, {}))
    if profile_name == "default":
        profile["base_url"] = (
            _flag(argv, "--base-url")
            or os.environ.get("FASTCODE_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or profile.get("base_url")
        )
        profile["model"] = _flag(argv, "--model") or os.environ.get("FASTCODE_MODEL") or profile.get("model")
    policy = os.environ.get("FASTCODE_AGENT__WARMUP") or config.get("agent", {}).get("warmup", "auto")
    base_url, model = profile.get("base_url"), profile.get("model")
    if not isinstance(base_url, str) or not isinstance(model, str):
        return None
    key = os.environ.get(profile.get("api_key_env", "OPENAI_API_KEY"), "")
    kind = profile.get("kind", "auto")
    if kind not in ("auto", "llamacpp", "vllm"):
        policy = "never" if policy == "auto" else policy
    return base_url, model, key, str(policy)


def begin(argv: list[str]) -> None:
    """Send the early warm-up from a thread when one is due. Never raises."""
    try:
        target = _plan_target(argv)
        prefix = _load_prefix() if target else None
    except Exception:
        return
    if target is None or prefix is None:
        return
    base_url, model, key, policy = target
    local = is_loopback(base_url)
    if policy == "never" or (policy == "auto" and not local):
        return
    messages, tools = prefix
    future: Future[Any] = Future()
    _early[target_key(base_url, model)] = (future, messages, tools)
    extra = {"cache_prompt": True} if local else {}

    def send() -> None:
        from fastcode.models.warmup_request import WARMUP_TIMEOUT_S, warmup_request

        try:
            future.set_result(
                warmup_request(
                    base_url,
                    model,
                    api_key=key or None,
                    messages=messages,
                    tools=tools,
                    timeout_s=WARMUP_TIMEOUT_S,
                    extra_body=extra,
                )
            )
        except BaseException as exc:  # surfaced to whoever awaits it
            future.set_exception(exc)

    threading.Thread(target=send, name="fastcode-early-warmup", daemon=True).start()


def preload_openai() -> None:
    """Import openai (and the lazily loaded chat resources) in a thread, overlapping the context gathering.
    The engine starts this once its own imports are done, so they do not compete for the interpreter."""
    global _preloading
    if _preloading:
        return
    _preloading = True

    def load() -> None:
        with contextlib.suppress(Exception):
            import openai

            openai.AsyncOpenAI(api_key="preload", base_url="http://127.0.0.1:9/v1").chat.completions  # noqa: B018

    threading.Thread(target=load, name="fastcode-import-openai", daemon=True).start()


def take(key: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Future[Any] | None:
    """The early warm-up for this target, if one was sent with exactly this prefix."""
    entry = _early.pop(key, None)
    if entry is None:
        return None
    future, sent_messages, sent_tools = entry
    return future if sent_messages == messages and sent_tools == tools else None
