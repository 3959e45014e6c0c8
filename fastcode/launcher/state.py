"""Server state files and process identity: where they live, writing, listing, and "is that pid still it?".

State lives in `<repo>/.fastcode/serve/` when the folder is inside a git repository (the nearest folder above it
holding `.git`), else in `~/.cache/fastcode/serve/` ($XDG_CACHE_HOME respected). Each server has `<id>.json` (a
`ServerState`) and `<id>.log` (its stdout and stderr); a `.gitignore` of `*` keeps both out of `git status`.

A keep-alive server (see `keepalive`) also has `<id>.leases/`: one file per fastcode process using it, named after
its pid and start time, so a lease of a process that died (even by SIGKILL) is recognised as stale; and `<id>.ready`
once its supervisor has set it up. Its state file's mtime is its last activity: the supervisor touches it whenever
the server is in use.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastcode.core.paths import cache_root


@dataclass
class ServerState:
    """What a state file records about one running server."""

    id: str
    kind: str
    """llama or vllm."""
    model: str
    """What identifies the model for reuse: the GGUF's absolute path, or the vLLM model name / path."""
    served_name: str
    """The model name requests use."""
    port: int
    pid: int
    started: float
    """Wall-clock start, seconds since the epoch."""
    log: str
    detached: bool
    ephemeral: bool = False
    """Started for one run and stopped at its end: never reused by another run."""
    proc_start: str = ""
    """The process's start time from /proc (guards against a recycled pid)."""
    host: str = "127.0.0.1"
    command: list[str] = field(default_factory=list)
    keep_alive_s: float = 0.0
    """> 0: run by a keep-alive supervisor (`pid`), which stops it after this many seconds without activity."""

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"


def state_dir(start: Path | None = None) -> Path:
    """`<repo>/.fastcode/serve` inside a git repository, else `~/.cache/fastcode/serve`."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder / ".fastcode" / "serve"
    return cache_root() / "serve"


def shared_dir() -> Path:
    """Where kept-alive local servers are recorded: one per model for the whole machine, reused from any repo."""
    return cache_root() / "serve"


def state_dirs(start: Path | None = None) -> list[Path]:
    """Every folder `serve status` and `serve stop` look in: the repo's (or the cache's) and the shared one."""
    return list(dict.fromkeys([state_dir(start), shared_dir()]))


def prepare_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():  # logs and state never show up in `git status`
        ignore.write_text("*\n")


def write_state(folder: Path, state: ServerState) -> Path:
    prepare_dir(folder)
    path = folder / f"{state.id}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)
    return path


def remove_state(folder: Path, server_id: str) -> None:
    (folder / f"{server_id}.json").unlink(missing_ok=True)
    (folder / f"{server_id}.ready").unlink(missing_ok=True)
    shutil.rmtree(folder / f"{server_id}.leases", ignore_errors=True)


def take_lease(folder: Path, server_id: str) -> Path:
    """Record that this process uses the server: its supervisor does not count idle time while the lease holds."""
    leases = folder / f"{server_id}.leases"
    prepare_dir(folder)
    leases.mkdir(exist_ok=True)
    path = leases / f"{os.getpid()}-{proc_start_time(os.getpid())}-{secrets.token_hex(2)}"
    path.touch()
    return path


def release_lease(lease: Path | None) -> None:
    if lease is not None:
        lease.unlink(missing_ok=True)


def live_leases(folder: Path, server_id: str) -> int:
    """How many processes hold a lease on the server; leases of dead processes are removed."""
    live = 0
    leases = folder / f"{server_id}.leases"
    for path in leases.iterdir() if leases.is_dir() else ():
        pid, _, rest = path.name.partition("-")
        if pid.isdigit() and process_alive(int(pid), rest.rpartition("-")[0]):
            live += 1
        else:
            path.unlink(missing_ok=True)
    return live


def idle_left(folder: Path, state: ServerState) -> float | None:
    """Seconds before a keep-alive server stops for lack of activity; None when in use or not a keep-alive one."""
    if state.keep_alive_s <= 0 or live_leases(folder, state.id):
        return None
    try:
        last = (folder / f"{state.id}.json").stat().st_mtime
    except OSError:
        return 0.0
    return max(0.0, state.keep_alive_s - (time.time() - last))


def list_states(folder: Path) -> list[ServerState]:
    """The servers recorded in `folder` whose process is still alive; state files of dead ones are removed."""
    states = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            state = ServerState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if process_alive(state.pid, state.proc_start):
            states.append(state)
        else:
            remove_state(folder, state.id)
    return states


def proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name (which may hold spaces)


def proc_start_time(pid: int) -> str:
    stat = proc_stat(pid)
    return stat[19] if stat and len(stat) > 19 else ""


def process_alive(pid: int, proc_start: str = "") -> bool:
    """True when `pid` runs (not a zombie) and, if `proc_start` is given, is still the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = proc_stat(pid)
    if stat is None:
        return not Path("/proc/self/stat").exists()  # no /proc at all: trust kill(0)
    return stat[0] != "Z" and (not proc_start or stat[19] == proc_start)


def prune_logs(folder: Path, keep: int = 10) -> None:
    """Delete the logs of stopped servers beyond the newest `keep` (each run of the embedded model leaves one)."""
    if not folder.is_dir():
        return
    stopped = [p for p in folder.glob("*.log") if not p.with_suffix(".json").exists()]
    stopped.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in stopped[keep:]:
        old.unlink(missing_ok=True)
