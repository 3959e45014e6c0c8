"""A suite run: pick the instances, run them on a pool of workers, show progress, write the report.

The pool decides where an instance runs: `LocalPool` (threads on this machine, each driving one instance at a time;
the agent, the tests and setup run in their own processes, so instances really run in parallel) or a Ray cluster
(`evals.ray_pool`). The harness keeps at most `workers` instances in flight, appends each finished instance to
results.jsonl at once, and `--resume` skips the instances already there (errors are retried).
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from fastcode.evals import procs
from fastcode.evals.instances import BrokenLine, Instance
from fastcode.evals.report import InstanceResult, append_result, read_results, rewrite, summarize, write_summary
from fastcode.evals.runner import RunOptions, run_instance


@dataclass
class SuiteRun:
    suite: Path
    entries: list[Instance | BrokenLine]
    run: RunOptions
    workers: int = 1
    resume: bool = False
    model_name: str = "fastcode"
    order: list[str] = field(default_factory=list)
    """Every instance id of the suite, in file order (results.jsonl keeps that order)."""
    meta: dict[str, Any] = field(default_factory=dict)


class Pool(Protocol):
    """Where instances run. `submit` returns at once; the future's result is the instance's result (an instance's
    own failure is an `error` result, never an exception)."""

    def describe(self) -> str:
        """For the first progress line, e.g. "2 workers" or "Ray at 10.0.0.1:6379 (8 CPUs)"."""
        ...

    def submit(self, instance: Instance) -> Future[InstanceResult]: ...

    def cancel(self) -> None:
        """Ctrl-C: end the instances in flight and start no more."""
        ...

    def close(self) -> None: ...


class LocalPool:
    """Threads on this machine, one instance each."""

    def __init__(self, workers: int, run: RunOptions) -> None:
        self.workers, self.run = workers, run
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval")

    def describe(self) -> str:
        return f"{self.workers} worker" + ("s" if self.workers != 1 else "")

    def submit(self, instance: Instance) -> Future[InstanceResult]:
        return self._threads.submit(run_instance, instance, self.run)

    def cancel(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        procs.kill_all()

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)


class Progress:
    """done/total, resolved so far, running, elapsed and ETA on stderr: a status line rewritten every second on a
    terminal, else one line per finished instance. Silent when `stream` is None (`--json`)."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream, self.done, self.resolved, self.running = total, stream, 0, 0, 0
        self.started = time.perf_counter()
        self.tty = bool(stream and stream.isatty())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.tty:
            threading.Thread(target=self._tick, daemon=True, name="eval-progress").start()

    def state(self) -> str:
        elapsed = time.perf_counter() - self.started
        eta = f"ETA {elapsed / self.done * (self.total - self.done):.0f} s" if self.done else "ETA -"
        return (f"[{self.done}/{self.total}] resolved {self.resolved}/{self.done} · {self.running} running · "
                f"{elapsed:.0f} s elapsed · {eta}")  # fmt: skip

    def finished(self, result: InstanceResult) -> None:
        with self._lock:
            self.done += 1
            self.resolved += result.resolved
            if self.stream is None:
                return
            mark = {"resolved": "✓", "unresolved": "✗", "error": "!"}[result.status]
            what = result.status if result.status != "error" else f"error: {result.error}"
            took = f"{result.total_s:.1f} s"
            if result.wall_s is not None:
                took = f"{result.wall_s:.1f} s agent, {result.model_calls} calls"
            line = f"{mark} {result.instance_id}: {what} ({took})"
            if self.tty:
                self.stream.write(f"\r\x1b[K{line}\n{self.state()}")
            else:
                self.stream.write(f"{self.state()}  {line}\n")
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                assert self.stream is not None
                self.stream.write(f"\r\x1b[K{self.state()}")
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self.tty and self.stream is not None:
                self.stream.write("\n")
                self.stream.flush()


def select(entries: list[Instance | BrokenLine], only: list[str], limit: int | None) -> list[Instance | BrokenLine]:
    chosen = [e for e in entries if not only or e.instance_id in only]
    return chosen[:limit] if limit else chosen


def _broken(entry: BrokenLine) -> InstanceResult:
    return InstanceResult(instance_id=entry.instance_id, status="error", error=entry.error)


def run_suite(
    job: SuiteRun, *, stream: TextIO | None = sys.stderr, on_result=None, pool: Pool | None = None
) -> tuple[dict, list[InstanceResult]]:
    """Run every selected entry on `pool` (default: `job.workers` local threads), at most `job.workers` at once;
    returns the summary and the results in suite order. KeyboardInterrupt ends the instances in flight, keeps what
    finished, writes the report and re-raises."""
    procs.allow_starts()
    out = job.run.out
    out.mkdir(parents=True, exist_ok=True)
    done = read_results(out) if job.resume else {}
    if not job.resume:
        for name in ("results.jsonl", "predictions.jsonl"):
            (out / name).unlink(missing_ok=True)
    todo = [e for e in job.entries if e.instance_id not in done or done[e.instance_id].status == "error"]
    pool = pool or LocalPool(max(1, job.workers), job.run)
    if stream is not None:
        skipped = f" ({len(job.entries) - len(todo)} already done)" if len(todo) < len(job.entries) else ""
        count = f"{len(todo)} instance" + ("s" if len(todo) != 1 else "")
        stream.write(f"fastcode eval: {count}{skipped} on {pool.describe()} -> {out}\n")
        stream.flush()
    progress = Progress(len(todo), stream)
    started = time.perf_counter()

    def record(result: InstanceResult) -> None:
        append_result(out, result, job.model_name)
        progress.finished(result)
        if on_result is not None:
            on_result(result)

    interrupted = False
    try:
        for entry in todo:
            if isinstance(entry, BrokenLine):
                record(_broken(entry))
        waiting = [e for e in todo if isinstance(e, Instance)]
        pending: set[Future] = set()
        while waiting or pending:
            while waiting and len(pending) < max(1, job.workers):
                pending.add(pool.submit(waiting.pop(0)))
            progress.running = len(pending)
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            progress.running = len(pending)
            for future in finished:
                record(future.result())
    except KeyboardInterrupt:
        interrupted = True
        pool.cancel()
    finally:
        pool.close()
        progress.close()
    order = job.order or [e.instance_id for e in job.entries]
    results = rewrite(out, order, job.model_name)
    meta = {
        "suite": str(job.suite),
        "model": job.model_name,
        "workers": job.workers,
        "run_wall_s": round(time.perf_counter() - started, 2),
        "interrupted": interrupted,
    } | job.meta
    summary = summarize(results, meta)
    write_summary(out, summary, results)
    if interrupted:
        raise KeyboardInterrupt
    return summary, results
