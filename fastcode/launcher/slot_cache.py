"""The prompt's KV cache across restarts of a kept-alive llama-server: saved when the supervisor stops an idle
server, restored when the next run starts one, where the build supports it (`--slot-save-path`).

The supervisor (`keepalive`) does all three steps: `restore` once the new server answers /health (runs wait for it
before their first request), `check` after the first request, `save` before it stops an idle server. Files live in
`~/.cache/fastcode/slots/` ($XDG_CACHE_HOME respected) as `<key>-slot<N>.bin`, the key a hash of the GGUF, the
llama-server binary and the context size: a KV cache is only valid for exactly those. Some builds report a restore
as done and then recompute the whole prompt: when the first request after a restore takes no token from the cache,
`check` writes `<key>.broken`, after which that key is neither saved nor restored again. Every failure here is
quiet: the server then simply starts cold.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from fastcode.core.paths import cache_root
from fastcode.launcher.llama import PARALLEL_SLOTS

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STALE_S = 30 * 86400
"""Slot files of other keys (an older binary or GGUF) untouched this long are deleted at the next save."""


def slots_dir() -> Path:
    return cache_root() / "slots"


def slot_key(gguf: Path, command: Sequence[str], ctx: int) -> str:
    """The key of a KV cache: the GGUF and the binary (path, size, mtime) and the context size."""
    parts: list[object] = [ctx]
    for path in (gguf, Path(command[0])):
        try:
            st = path.stat()
            parts.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            parts.append(str(path))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def usable(key: str) -> bool:
    return bool(key) and not (slots_dir() / f"{key}.broken").exists()


def _post(url: str, body: dict[str, object], timeout_s: float = 60.0) -> dict[str, object] | None:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with _NO_PROXY.open(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def save(root_url: str, key: str) -> int:
    """Save every slot of the server at `root_url`; the number of tokens saved (empty slots leave no file)."""
    if not usable(key):
        return 0
    saved = 0
    for slot in range(PARALLEL_SLOTS):
        name = f"{key}-slot{slot}.bin"
        answer = _post(f"{root_url}/slots/{slot}?action=save", {"filename": name})
        tokens = int(answer.get("n_saved") or 0) if answer else 0  # type: ignore[call-overload]
        if tokens:
            saved += tokens
        else:
            (slots_dir() / name).unlink(missing_ok=True)
    for old in slots_dir().glob("*-slot*.bin"):
        if not old.name.startswith(f"{key}-") and time.time() - old.stat().st_mtime > STALE_S:
            old.unlink(missing_ok=True)
    return saved


def restore(root_url: str, key: str) -> int:
    """Restore the saved slots into a fresh server (before any request); the number of tokens restored."""
    if not usable(key):
        return 0
    restored = 0
    for slot in range(PARALLEL_SLOTS):
        if (slots_dir() / f"{key}-slot{slot}.bin").is_file():
            answer = _post(f"{root_url}/slots/{slot}?action=restore", {"filename": f"{key}-slot{slot}.bin"})
            restored += int(answer.get("n_restored") or 0) if answer else 0  # type: ignore[call-overload]
    return restored


def check(root_url: str, key: str) -> bool | None:
    """After the first request on restored slots: True when it took prompt tokens from the cache, False (and the
    key marked broken) when the server recomputed the whole prompt, None when it cannot tell yet (no request so far,
    or no /metrics)."""
    try:
        with _NO_PROXY.open(f"{root_url}/metrics", timeout=5.0) as response:
            text = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("llamacpp:") and " " in line)
    try:
        cached = float(values["llamacpp:prompt_tokens_cached_total"])
        computed = float(values["llamacpp:prompt_tokens_total"])
    except (KeyError, ValueError):
        return None
    if computed + cached <= 0:
        return None
    if cached > 0:
        return True
    folder = slots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.broken").write_text("a restored slot did not serve its prompt from the cache\n")
    for stale in folder.glob(f"{key}-slot*.bin"):
        stale.unlink(missing_ok=True)
    return False
