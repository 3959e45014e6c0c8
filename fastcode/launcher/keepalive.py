"""The keep-alive supervisor: it owns one server process and stops it after `--idle` seconds without activity.

    python -m fastcode.launcher.keepalive --folder F --id ID --idle SECONDS --url URL [--slots KEY] -- SERVER ARGS...

`launch` starts it in a session of its own, so it outlives the fastcode run that started it (even one killed with
SIGKILL). The server is its child, with a parent-death signal: if the supervisor dies, by SIGKILL too, so does the
server. Both share one process group, which `fastcode serve stop` signals. Once the server answers /health, the
supervisor restores its saved prompt cache (`--slots`, see `slot_cache`) and then writes `<id>.ready`, which runs
wait for before their first request. Activity, checked every 0.2-2 s, is any of: a live lease (a fastcode process
using the server, see `state`), a request in progress, or a counter of llama-server's `/metrics` (else `/slots`)
that moved. Each activity touches the state file; after `--idle` seconds without any, the supervisor retires the
state file (unless a run leased the server meanwhile), saves the prompt cache (`--slots`), stops the server and
exits 0. It also stops the server on SIGTERM / SIGINT and when the state file disappears; when the server exits on
its own, the supervisor exits with its code. Standard library only: it stays small while it waits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fastcode.launcher import slot_cache
from fastcode.launcher.procgroup import parent_death
from fastcode.launcher.state import live_leases, remove_state

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_COUNTERS = ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total", "llamacpp:n_decode_total")


class _Stop(Exception):
    """Raised by the SIGTERM / SIGINT handler: leave the loop, stop the server."""


def format_duration(seconds: float) -> str:
    """600 -> "10m", 90 -> "1m30s", 3 -> "3s", 5400 -> "1h30m"."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _log(message: str) -> None:
    print(f"fastcode keepalive [{time.strftime('%H:%M:%S')}]: {message}", flush=True)


def _get(url: str) -> bytes | None:
    """The body of a GET; None when the server does not answer 200 (not up, or no such endpoint)."""
    try:
        with _NO_PROXY.open(url, timeout=2.0) as response:
            return response.read() if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def activity(url: str) -> tuple[bool, tuple[float, ...]]:
    """(busy, counters) of the server at `url`: busy when a request is in progress or the server is too busy to
    answer within 2 s; counters (from /metrics) change with every request. Without /metrics, /slots tells busy."""
    try:
        with _NO_PROXY.open(url + "/metrics", timeout=2.0) as response:
            text = response.read().decode(errors="replace")
    except TimeoutError:
        return True, ()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError):
            return True, ()
        slots = _get(url + "/slots")
        try:
            listed = json.loads(slots) if slots else []
        except ValueError:
            listed = []
        return any(isinstance(s, dict) and s.get("is_processing") for s in listed), ()
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("llamacpp:"):
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values.get("llamacpp:requests_processing", 0) > 0, tuple(values.get(c, 0.0) for c in _COUNTERS)


def _retire(folder: Path, server_id: str) -> bool:
    """Remove the state file so no new run finds the server, unless a run leased it meanwhile (then restore it)."""
    path = folder / f"{server_id}.json"
    try:
        saved = path.read_bytes()
    except OSError:
        return True
    path.unlink(missing_ok=True)
    if not live_leases(folder, server_id):
        return True
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(saved)
    os.replace(tmp, path)
    return False


def _ready(folder: Path, server_id: str, url: str, slots: str) -> int | None:
    """Once the server answers /health: restore its saved prompt cache, then tell waiting runs (`<id>.ready`).
    None while the server is not up yet, else the number of tokens restored."""
    if _get(url + "/health") is None:
        return None
    restored = slot_cache.restore(url, slots) if slots else 0
    if restored:
        _log(f"restored {restored} tokens of saved prompt cache")
    # Runs wait for `<id>.ready` and read the count (a server with a restored cache gets no warm-up): written whole.
    partial = folder / f"{server_id}.ready.tmp"
    partial.write_text(str(restored))
    os.replace(partial, folder / f"{server_id}.ready")
    return restored


def supervise(proc: subprocess.Popen[bytes], folder: Path, server_id: str, idle_s: float, url: str,
              slots: str = "") -> int:  # fmt: skip
    """Watch `proc` until it exits (its code) or it has been idle for `idle_s` (0 after stopping it)."""
    state = folder / f"{server_id}.json"
    interval = max(0.2, min(2.0, idle_s / 10))
    last, counters, seen_state, ready, checked = time.monotonic(), (), False, False, True
    while proc.poll() is None:
        if state.exists():
            seen_state = True
        elif seen_state:
            _log("state file removed: stopping the server")
            return 0
        if not ready and (restored := _ready(folder, server_id, url, slots)) is not None:
            ready, checked = True, restored == 0  # only a restore is checked, on the first request after it
        if ready and not checked and (held := slot_cache.check(url, slots)) is not None:
            checked = True
            _log("the restored prompt cache held" if held else "the restored prompt cache did not hold: not used again")
        busy, now_counters = activity(url)
        moved = bool(counters) and bool(now_counters) and now_counters != counters
        counters = now_counters or counters
        if busy or moved or live_leases(folder, server_id):
            last = time.monotonic()
            with contextlib.suppress(OSError):
                os.utime(state)  # the last activity, for `fastcode serve status`
        elif time.monotonic() - last >= idle_s:
            if _retire(folder, server_id):
                _log(f"no activity for {format_duration(idle_s)}: stopping the server")
                if slots and (saved := slot_cache.save(url, slots)):
                    _log(f"saved {saved} tokens of prompt cache")
                return 0
            last = time.monotonic()
        time.sleep(interval)
    _log(f"the server exited with code {proc.returncode}")
    return int(proc.returncode)


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastcode.launcher.keepalive", description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="the state folder")
    parser.add_argument("--id", required=True, help="the server id (its state file is FOLDER/ID.json)")
    parser.add_argument("--idle", type=float, required=True, help="seconds without activity before stopping")
    parser.add_argument("--url", required=True, help="the server's root URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--slots", default="", help="save and restore llama-server's slots under this key")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the server's command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no server command after --")

    def stop(signum: int, frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    command, preexec = parent_death(command)
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=preexec)
    code = 0
    try:
        _log(f"pid {os.getpid()} supervises server pid {proc.pid}; stops it after {format_duration(args.idle)} idle")
        code = supervise(proc, args.folder, args.id, args.idle, args.url.rstrip("/"), args.slots)
    except _Stop as exc:
        _log(f"{exc}: stopping the server")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        _stop(proc)
        path = args.folder / f"{args.id}.json"
        try:
            ours = json.loads(path.read_text()).get("pid") == os.getpid()
        except (OSError, ValueError):
            ours = False
        if ours or not path.exists():
            remove_state(args.folder, args.id)
    return code


if __name__ == "__main__":
    sys.exit(main())
