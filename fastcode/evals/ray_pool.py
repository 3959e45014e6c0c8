"""`fastcode eval --ray`: each instance is one Ray task on an existing cluster (or one started in process).

A task runs exactly what a local worker runs (`run_instance`: a throwaway copy, setup, the agent or the gold patch,
the hidden tests, scoring) on whichever node Ray picks, and returns the result row and the instance's output files
to the driver, which writes them where a local run would. No shared file system: each repository travels once
through Ray's object store (`shipping.pack_repo`, put once and shared by all its instances), a scripted trajectory
with its instance. Nodes need fastcode installed (with the `scale` extra) and the model endpoint reachable.

A task whose worker process dies is retried by Ray (`RETRIES` times); one that still fails becomes that instance's
error and the others go on. Ctrl-C cancels the tasks in flight (their agents and tests are ended on the node).

Ray is imported here only, and this module only with `--ray` (importing Ray costs seconds and most users never
need it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastcode.evals.instances import Instance, parse_instance
from fastcode.evals.report import InstanceResult
from fastcode.evals.runner import RunOptions, run_instance
from fastcode.evals.shipping import RepoPack, collect_files, pack_repo, unpack_repo, write_files
from fastcode.evals.workspace import WorkspaceError

MISSING = "--ray needs Ray: pip install 'fastcode[scale]'"
RETRIES = 2
"""Ray re-runs a task this many times when its worker process dies (not when the instance itself fails)."""
CANCEL_GRACE_S = 10.0
CONNECT_HELP = "start one with `ray start --head`, name it with --ray ADDRESS, or use --ray local"


class RayUnavailable(Exception):
    """Ray is not installed (exit 2) or no cluster answered (exit 3): one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_remote(instance_data: dict[str, Any], pack: RepoPack | None, run: RunOptions, script: bytes | None) -> dict:
    """The Ray task: the instance in a scratch folder of this node; returns its result row and output files."""
    from fastcode.evals import procs

    instance_id = str(instance_data.get("instance_id"))
    # One folder per run and instance on this node: a retry after a dead worker first clears what that one left.
    run_key = hashlib.sha256(str(run.out).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"fastcode-ray-{run_key}-{instance_id}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        procs.allow_starts()
        if pack is not None:
            instance_data = instance_data | {"repo_path": str(unpack_repo(pack, scratch / "source"))}
        instance = parse_instance(instance_data)
        options = replace(run, out=scratch / "out", scratch_parent=scratch)
        if script is not None:
            folder = scratch / "scripted"
            folder.mkdir()
            (folder / f"{instance_id}.json").write_bytes(script)
            options = replace(options, agent=replace(run.agent, scripted_dir=folder))
        result = run_instance(instance, options)
        files = collect_files(scratch / "out" / "instances" / instance_id)
        return {"result": result.model_dump(), "files": files, "node": os.uname().nodename}
    except WorkspaceError as exc:
        failed = InstanceResult(instance_id=instance_id, mode=run.mode, error=str(exc))
        return {"result": failed.model_dump(), "files": {}}
    except KeyboardInterrupt:  # ray.cancel: end what this instance started on the node
        procs.kill_all()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _probe() -> str:
    import fastcode

    return fastcode.__version__


class RayPool:
    """Instances as Ray tasks; `--workers` (or the cluster's CPUs / `cpus`) of them in flight at once."""

    def __init__(self, address: str, run: RunOptions, *, cpus: float = 1.0) -> None:
        if address != "local":
            _token_auth_like_ray_start()  # before Ray is imported: it reads RAY_AUTH_MODE once
        try:
            import ray
        except ImportError:
            raise RayUnavailable(MISSING, 2) from None
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
        self.ray, self.run, self.cpus, self.address = ray, run, cpus, address
        self._packs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._in_flight: dict[Any, str] = {}
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR", "include_dashboard": False}
        if address != "local" and (target := _target(address)) is not None and not _answers(*target):
            # ray.init would retry a dead address for many minutes
            raise RayUnavailable(f"no Ray cluster at {address!r} ({target[0]}:{target[1]} refuses): {CONNECT_HELP}", 3)
        try:
            ray.init(address=address, **kwargs)  # "local": a new cluster in this process, whatever $RAY_ADDRESS says
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RayUnavailable(f"no Ray cluster at {address!r} ({first}): {CONNECT_HELP}", 3) from None
        self._task = ray.remote(run_remote).options(num_cpus=cpus, max_retries=RETRIES, retry_exceptions=False)
        try:
            ray.get(ray.remote(_probe).options(num_cpus=0).remote(), timeout=120)
        except Exception as exc:
            ray.shutdown()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise RayUnavailable(f"Ray workers cannot run fastcode ({first}): install it on every node", 3) from None
        self.total_cpus = float(ray.cluster_resources().get("CPU", 0))

    def capacity(self) -> int:
        """Instances the cluster can run at once (its CPUs over the CPUs each one asks for), at least 1."""
        return max(1, int(self.total_cpus // self.cpus))

    def describe(self) -> str:
        where = "a local Ray cluster" if self.address == "local" else f"Ray ({self.address})"
        return f"{where}: {self.total_cpus:g} CPUs, {self.cpus:g} per instance"

    def _pack(self, repo_path: str) -> Any:
        """The object-store reference of a repository, made on first use and shared by all its instances."""
        with self._lock:
            if repo_path not in self._packs:
                try:
                    self._packs[repo_path] = self.ray.put(pack_repo(Path(repo_path)))
                except WorkspaceError as exc:
                    self._packs[repo_path] = exc
            return self._packs[repo_path]

    def submit(self, instance: Instance) -> Future[InstanceResult]:
        done: Future[InstanceResult] = Future()
        pack = self._pack(instance.repo_path)
        if isinstance(pack, WorkspaceError):
            done.set_result(InstanceResult(instance_id=instance.instance_id, mode=self.run.mode, error=str(pack)))
            return done
        script = None  # a scripted trajectory travels with its instance (a missing one fails there, as locally)
        if self.run.agent.scripted_dir is not None:
            path = self.run.agent.scripted_dir / f"{instance.instance_id}.json"
            script = path.read_bytes() if path.is_file() else None
        ref = self._task.remote(instance.model_dump(), pack, self.run, script)
        with self._lock:
            self._in_flight[ref] = instance.instance_id
        ref.future().add_done_callback(lambda future: self._finish(ref, instance, future, done))
        return done

    def _finish(self, ref: Any, instance: Instance, future: Future, done: Future[InstanceResult]) -> None:
        with self._lock:
            self._in_flight.pop(ref, None)
        try:
            reply = future.result()
            result = InstanceResult.model_validate(reply["result"])
            logs = self.run.out / "instances" / instance.instance_id
            shutil.rmtree(logs, ignore_errors=True)
            logs.mkdir(parents=True)
            write_files(reply["files"], logs)
            if result.trace is not None:
                result.trace = str((logs / "trace.jsonl").resolve())
        except Exception as exc:  # the task failed for good: its worker kept dying, or it was cancelled
            result = InstanceResult(instance_id=instance.instance_id, mode=self.run.mode, error=_why(exc))
        done.set_result(result)

    def cancel(self) -> None:
        with self._lock:
            refs = list(self._in_flight)
        for ref in refs:
            self.ray.cancel(ref)  # KeyboardInterrupt in the task: it ends its agent and tests, then its copy goes
        if refs:  # give them a moment to do so before the driver disconnects (a local cluster goes with it)
            self.ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)

    def close(self) -> None:
        self.ray.shutdown()


def _token_auth_like_ray_start() -> None:
    """Ray >= 2.5x: `ray start` turns token authentication on when a token exists (~/.ray/auth_token, which a local
    `ray.init()` creates) and RAY_AUTH_MODE is unset, but a driver connecting to that cluster does not, and fails with
    "InvalidAuthToken". Apply the same rule here, so `--ray auto` reaches a cluster `ray start` made on this machine."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _target(address: str) -> tuple[str, int] | None:
    """The host and port `ray.init(address)` would connect to, where it can be told: an explicit `host:port`
    (or `ray://host:port`), or for `auto` the cluster `ray start` recorded ($RAY_ADDRESS first). None: Ray decides
    (and for `auto` with no cluster recorded, fails at once by itself)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"  # where Ray records it
            recorded = Path(base) / "ray" / "ray_current_cluster"
            address = recorded.read_text().strip() if recorded.is_file() else ""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _answers(host: str, port: int, timeout_s: float = 3.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _why(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "WorkerCrashedError":
        return f"its Ray worker died {RETRIES + 1} times (Ray retried it {RETRIES} times)"
    if name in ("TaskCancelledError", "CancelledError"):
        return "cancelled"
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"Ray: {name}: {lines[-1] if lines else ''}".rstrip(": ")
