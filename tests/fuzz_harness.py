"""Fuzz harness for issue 13: hostile tool calls and hostile model responses must never crash fastcode, abort a
run with an `internal:` error, or reach a file outside the repository.

Two parts, both driven by a seeded `random.Random` (every case has its own generator, seeded from the run seed and
the case index, so any one case can be replayed alone):

1. Tool calls, in process, no model: `fastcode.tools.execute` and `ToolExecutor.run_turn` (which also writes the
   trace events) get calls to every registered tool — and unknown ones — with hostile arguments: `..`, absolute
   paths, symlinks in and out of a temp repository, symlink loops, a FIFO, NUL bytes, lone surrogates, long strings,
   non-object JSON, deep nesting, 5,000-digit numbers, wrong types. A canary file lives in a sibling directory of
   the repository: its token in any output, any change next to the repository, or a write hook called with a path
   outside it is an escape. Anything other than a ToolResult or a ToolError is a crash. The `run` tool is not
   confined by design (issue 18): its arguments are validated for every case, but only a fixed list of harmless
   commands (`true`, `echo …`, `exit 3`) is ever executed, and its output is not checked for escapes.
2. Model responses end to end: `python -m fastcode exec … --json` (or human mode) in a fresh temp git repository
   against (a) the scripted server (`fastcode.testing.ScriptedServer`, one per run, in this process) for fuzzed
   turns, and (b) a raw SSE server in this process for wire-level oddities and huge replies. Each run plays a few
   fuzzed responses and then `finish`. A Python traceback on stderr, an exit code other than 0/1/3, a missing
   `result` line or a hang is a crash; an error event of kind `internal` is an internal abort; the canary token in
   the output or in a request sent to the model, or a change next to the repository, is an escape. The fastcode
   subprocess runs through a small wrapper that records the traceback behind every `internal` error event, so
   each failure comes with the fastcode file:line it came from.

    python tests/fuzz_harness.py --responses 1000 --tool-calls 10000 --seed 1
    python tests/fuzz_harness.py --replay-tool 17 --seed 1        # one tool case, verbosely
    python tests/fuzz_harness.py --replay-run 5 --seed 1          # one end-to-end run, verbosely
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

import fastcode  # noqa: E402

FASTCODE_DIR = Path(fastcode.__file__).resolve().parent
CASE_TIMEOUT_S = 10.0
"""A tool case taking longer than this is a hang (the watchdog also unblocks FIFO readers after it)."""
RUN_TIMEOUT_S = 120.0
"""An end-to-end run taking longer than this is killed and counted as a hang."""
PASSWD_MARK = "root:x:0:0:"
"""/etc/passwd content: a read of it is an escape too."""

# ---------------------------------------------------------------------------------------------- results


@dataclass
class Failure:
    part: str
    """"tools" or "responses"."""
    kind: str
    """"crash", "internal" or "escape"."""
    exc_type: str
    message: str
    where: str
    """fastcode file:line the exception came from (and the library frame it ended in), when known."""
    case: str
    repro: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.part, self.kind, self.exc_type, self.where or _normalize(self.message)[:60])


@dataclass
class Report:
    part: str
    cases: int = 0
    runs: int = 0
    served: int = 0
    crashes: int = 0
    internal: int = 0
    escapes: int = 0
    unsafe: int = 0
    """Tool cases whose output (what the model reads next) holds a lone surrogate: listed, not counted as a
    failure; issue 13 asks for every string to be made safe to serialize."""
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    def add(self, failures: list[Failure]) -> None:
        """Count one case (or run) once per kind of failure it had, and keep every failure."""
        kinds = {f.kind for f in failures}
        self.crashes += "crash" in kinds
        self.internal += "internal" in kinds
        self.escapes += "escape" in kinds
        self.unsafe += "unsafe-text" in kinds
        self.failures.extend(failures)


def _normalize(message: str) -> str:
    message = re.sub(r"'[^']{0,200}'|\"[^\"]{0,200}\"", "'…'", message)
    return re.sub(r"\d+", "N", message)


def _first_line(text: str, limit: int = 160) -> str:
    line = next((ln for ln in str(text).splitlines() if ln.strip()), "")
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    return line if len(line) <= limit else line[:limit] + "…"


def _short(value: Any, limit: int = 220) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isascii() or "\x00" in text else text
    return text if len(text) <= limit else f"{text[: limit - 40]}…[{len(text)} chars]…{text[-30:]}"


def _where_from_frames(frames: list[tuple[str, int, str]]) -> str:
    """The innermost fastcode frame, plus the library frame the exception finally came from."""
    ours = [(f, n, fn) for f, n, fn in frames if Path(f).resolve().is_relative_to(FASTCODE_DIR)]
    if not ours:
        if not frames:
            return ""
        lib = Path(frames[-1][0])
        return f"no fastcode frame; {lib.parent.name}/{lib.name}:{frames[-1][1]} ({frames[-1][2]})"
    f, n, fn = ours[-1]
    where = f"{Path(f).resolve().relative_to(FASTCODE_DIR.parent)}:{n} ({fn})"
    last = frames[-1]
    if last != ours[-1]:
        lib = Path(last[0])
        where += f" <- {lib.parent.name}/{lib.name}:{last[1]}"
    return where


def where_of(exc: BaseException) -> str:
    frames = [(fr.filename, fr.lineno or 0, fr.name) for fr in traceback.extract_tb(exc.__traceback__)]
    return _where_from_frames(frames)


_TB_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.M)


def where_of_text(tb_text: str) -> tuple[str, str, str]:
    """(exception type, message, where) from the last traceback in `tb_text`."""
    blocks = tb_text.split("Traceback (most recent call last):")
    last = blocks[-1]
    frames = [(m[1], int(m[2]), m[3]) for m in _TB_FRAME.finditer(last)]
    lines = [ln for ln in last.splitlines() if ln.strip() and not ln.startswith(" ")]
    tail = lines[-1] if lines else ""
    exc_type, _, message = tail.partition(": ")
    return exc_type.split(".")[-1] or "?", message, _where_from_frames(frames)


def format_table(reports: list[Report]) -> str:
    out = [f"{'part':<10}{'cases':>8}{'runs':>7}{'crashes':>9}{'internal':>10}{'escapes':>9}{'wall s':>9}"
           f"{'unsafe text':>13}"]  # fmt: skip
    for r in reports:
        runs = str(r.runs) if r.runs else "-"
        unsafe = str(r.unsafe) if r.part == "tools" else "-"
        out.append(f"{r.part:<10}{r.cases:>8}{runs:>7}{r.crashes:>9}{r.internal:>10}{r.escapes:>9}{r.seconds:>9.1f}"
                   f"{unsafe:>13}")  # fmt: skip
    failures = [f for r in reports for f in r.failures]
    if not failures:
        out.append("no failures")
        return "\n".join(out)
    groups: dict[tuple[str, str, str, str], list[Failure]] = {}
    for f in failures:
        groups.setdefault(f.key, []).append(f)
    out.append("")
    out.append("failures (deduplicated by part, kind, exception type and where it came from):")
    for (part, kind, exc_type, _), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], -len(kv[1]))):
        first = items[0]
        cases = ", ".join(dict.fromkeys(f.case for f in items[:4])) + (", …" if len(items) > 4 else "")
        out.append(f"  [{part} {kind} x{len(items)}] {exc_type}: {_first_line(first.message)}")
        if first.where:
            out.append(f"      at {first.where}")
        out.append(f"      cases: {cases}")
        out.append(f"      repro: {first.repro}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- JSON text


class Raw:
    """JSON text inserted verbatim (NaN, 1e999, a 5,000-digit number, `[[[[…`)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({_short(self.text, 60)})"


class Obj:
    """A JSON object as (key, value) pairs: keys may repeat."""

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs


def to_json(value: Any, ascii_only: bool = True) -> str:
    """JSON text for `value`, which may hold Raw and Obj; strings keep lone surrogates (escaped, or raw)."""
    if isinstance(value, Raw):
        return value.text
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**4000 else Raw("9" * 4400).text
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, Obj):
        inner = ",".join(f"{to_json(k if isinstance(k, Raw) else str(k), ascii_only)}:{to_json(v, ascii_only)}"
                         for k, v in value.pairs)  # fmt: skip
        return "{" + inner + "}"
    if isinstance(value, dict):
        return to_json(Obj(list(value.items())), ascii_only)
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v, ascii_only) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=ascii_only)


def bignum(rng: random.Random, digits: int = 5000) -> Raw:
    return Raw(str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(digits - 1)))


def deep(rng: random.Random) -> Raw:
    n = rng.choice([100, 1000, 5000, 50_000, 200_000])
    if rng.random() < 0.5:
        return Raw("[" * n + "]" * n)
    return Raw('{"a":' * n + "1" + "}" * n)


# ---------------------------------------------------------------------------------------------- hostile values


def hostile_string(rng: random.Random, big: bool = True) -> str:
    pool: list[Callable[[], str]] = [
        lambda: "",
        lambda: " ",
        lambda: "hello",
        lambda: "\x00",
        lambda: "a\x00b",
        lambda: "\ud800",
        lambda: "\udfff",
        lambda: "x\ud800y\udc00z",
        lambda: "\udc80\udcff",
        lambda: "\ud83d\ude00",
        lambda: "\ufeff\u202e\u200b",
        lambda: "\r\n\r",
        lambda: "\x1b[2J\x1b[31mred",
        lambda: "é ü 中文 😀",
        lambda: "\n" * rng.randint(1, 2000),
        lambda: "$(touch pwned)`id`;|&",
        lambda: "--files",
        lambda: "-e",
        lambda: "(a*)*b",
        lambda: "[",
        lambda: "\\",
        lambda: "(?P<",
        lambda: "%s%n{0}",
        lambda: "def add(a, b):",
        lambda: "x = 1\n",
        lambda: "a" * rng.choice([300, 5000, 70_000]),
    ]
    if big:
        pool.append(lambda: "A" * rng.choice([200_000, 1_100_000]))
        pool.append(lambda: "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0xD800, 0xDFFF),
                                                    rng.randint(0x80, 0x10FFFF)])) for _ in range(200)))  # fmt: skip
    return rng.choice(pool)()


def hostile_int(rng: random.Random) -> Any:
    return rng.choice([
        0, -1, 1, 2, 3, 50, 1000, 1001, 2**31, 2**63, -(2**63), 10**20,
        bignum(rng), Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"), Raw("-0"), Raw("1.0"),
        1.5, -0.0, 1e308, "5", "abc", True, False, None, [], {}, [1], {"a": 1},
    ])  # fmt: skip


def hostile_bool(rng: random.Random) -> Any:
    return rng.choice([True, False, 0, 1, "true", "yes", None, [], 2, bignum(rng, 4400)])


def hostile_any(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.3:
        return hostile_string(rng, big=False)
    if roll < 0.5:
        return hostile_int(rng)
    if roll < 0.6:
        return deep(rng)
    if roll < 0.7 or depth > 2:
        return rng.choice([None, True, False, [], {}])
    if roll < 0.85:
        return [hostile_any(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {hostile_string(rng, big=False): hostile_any(rng, depth + 1) for _ in range(rng.randint(0, 3))}


# ---------------------------------------------------------------------------------------------- the world


@dataclass
class World:
    """A temp repository with symlinks in and out, a FIFO, a binary and a non-UTF-8 file, and a canary outside."""

    base: Path
    token: str

    @property
    def repo(self) -> Path:
        return self.base / "repo"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    @property
    def escape_marker(self) -> Path:
        marker = hashlib.sha1(f"marker-{self.token}".encode()).hexdigest()[:16]  # not the token: paths get echoed
        return Path(tempfile.gettempdir()) / f"fastcode-fuzz-escape-{marker}"

    def build(self, fifo: bool = True) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        out = self.outside
        if not out.exists():
            (out / "dir").mkdir(parents=True)
            (out / "canary.txt").write_text(f"canary {self.token}\n")
            (out / "canary.py").write_text(f"def canary_{self.token}():\n    return '{self.token}'\n")
            (out / "dir" / "secret.txt").write_text(f"secret {self.token}\n")
            evil = self.base / "repo-evil"  # a sibling whose name starts with the repo's
            evil.mkdir()
            (evil / "canary.txt").write_text(f"evil {self.token}\n")
        self.build_repo(fifo=fifo)

    def build_repo(self, fifo: bool = True) -> None:
        repo = self.repo
        if repo.exists() or repo.is_symlink():
            _force_rmtree(repo)
        (repo / "sub" / "deeper").mkdir(parents=True)
        (repo / ".git").mkdir()
        (repo / ".git" / "config").write_text("[core]\n")
        (repo / "a.py").write_text("def add(a, b):\n    return a + b\n\n\nclass C:\n    def m(self):\n        pass\n")
        (repo / "sub" / "b.txt").write_text("alpha\nbeta\ngamma\n")
        (repo / "sub" / "deeper" / "c.js").write_text("function f() { return 1 }\n")
        (repo / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
        (repo / "bom.py").write_bytes(b"\xef\xbb\xbfx = 1\n")
        (repo / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
        (repo / "binary.bin").write_bytes(b"\x00\x01\x02\xff" * 64)
        (repo / "empty.py").write_text("")
        links = {
            "link_in": "a.py",
            "link_indir": "sub",
            "link_out": "../outside/canary.txt",
            "link_outdir": "../outside",
            "link_abs_out": str(self.outside / "canary.txt"),
            "link_evil": "../repo-evil/canary.txt",
            "link_etc": "/etc/passwd",
            "dangling_out": "../outside/new_file.txt",
            "dangling_in": "nowhere.txt",
            "loop1": "loop2",
            "loop2": "loop1",
            "selfloop": "selfloop",
            "sub/up": "../../outside",
            "sub/deeper/root": "../..",
        }
        for name, target in links.items():
            os.symlink(target, repo / name)
        if fifo:
            os.mkfifo(repo / "fifo")

    def path_words(self) -> list[str]:
        return ["..", ".", "sub", "deeper", "link_out", "link_outdir", "link_in", "link_indir", "loop1", "selfloop",
                "a.py", "canary.txt", "outside", "repo", "repo-evil", "up", "root", ".git", "", "~", "\x00",
                "\ud800", "fifo", "dangling_out", "link_abs_out", "*", "%2e%2e"]  # fmt: skip

    def hostile_path(self, rng: random.Random) -> str:
        fixed = [
            "a.py", "sub/b.txt", "./a.py", "sub/../a.py", "sub//b.txt", "a.py/", "a.py/..", ".", "./", "", " ",
            "..", "../", "../outside/canary.txt", "../../etc/passwd", "/etc/passwd", "/etc/shadow",
            "/proc/self/environ",
            "/dev/zero", "/dev/stdin", str(self.outside / "canary.txt"), str(self.outside / "dir" / "secret.txt"),
            str(self.outside / "new.txt"), str(self.repo / "a.py"), str(self.repo) + "/../outside/canary.txt",
            str(self.escape_marker), "sub/../../outside/canary.txt", "../repo/a.py", "../repo-evil/canary.txt",
            "link_in", "link_indir/b.txt", "link_out", "link_outdir/canary.txt", "link_outdir/new.txt",
            "link_outdir/dir/secret.txt", "link_abs_out", "link_evil", "link_etc", "dangling_out", "dangling_in",
            "sub/up/canary.txt", "sub/deeper/root/../outside/canary.txt", "sub/deeper/root/a.py", "loop1",
            "loop1/x", "selfloop", "selfloop/a", "fifo", "binary.bin", "latin1.txt", "crlf.txt", "bom.py",
            "empty.py", ".git/config", ".git/hooks/pre-commit", ".GIT/config", ".fastcode/x", "sub/.git/x",
            "a.py\x00.txt", "\x00", "\ud800", "a\ud800.py", "sub/\udcff.txt", "~/.bashrc", "~", "$HOME/x",
            "file:///etc/passwd", "C:\\Windows\\win.ini", "\\\\server\\share", "..\\outside\\canary.txt",
            "x" * 300, "x" * 5000, "/".join(["a"] * 3000), "/".join([".."] * 50) + "/etc/passwd",
            "%2e%2e/outside/canary.txt", "a.py\n", "new_dir/new.py", "sub/new.txt", "new\ufeff.py",
        ]  # fmt: skip
        if rng.random() < 0.7:
            return rng.choice(fixed)
        words = self.path_words()
        sep = rng.choice(["/", "/", "//", "\\", "/./"])
        path = sep.join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        return ("/" + path) if rng.random() < 0.1 else path


def _force_rmtree(path: Path) -> None:
    def onerror(func: Any, p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(p, stat.S_IRWXU)
            func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, onerror=onerror)


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """Every entry under `root` (symlinks not followed): type, size, mtime and a content hash for small files."""
    found: dict[str, tuple[Any, ...]] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            p = here / name
            if p in skip:
                continue
            try:
                st = p.lstat()
            except OSError:
                continue
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha1(p.read_bytes()).hexdigest() if st.st_size < 1_000_000 else ""
                found[rel] = ("f", st.st_size, st.st_mtime_ns, digest, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = ("l", os.readlink(p))
            else:
                found[rel] = ("d" if stat.S_ISDIR(st.st_mode) else "o", stat.S_IMODE(st.st_mode))
    return found


def diff_snapshots(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = [f"created {k}" for k in after.keys() - before.keys()]
    changed += [f"removed {k}" for k in before.keys() - after.keys()]
    changed += [f"modified {k}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(changed)


# ---------------------------------------------------------------------------------------------- part 1: tool calls

HARMLESS_COMMANDS = ("true", "echo hi", "echo \ud800", "printf '\\377\\376'", "exit 3", "true\x00echo", "echo é")
"""The only commands the `run` tool is ever given to execute."""


@dataclass
class ToolCase:
    index: int
    name: str
    raw: str
    note: str

    def repro(self) -> str:
        return f"tool {self.name!r}, arguments {_short(self.raw)} [{self.note}]"


class ToolFuzzer:
    def __init__(self, seed: int, base: Path) -> None:
        from fastcode.tools import REGISTRY

        self.seed = seed
        self.world = World(base, hashlib.sha1(f"canary-{seed}-{os.getpid()}".encode()).hexdigest())
        self.world.build()
        self.tools = sorted(REGISTRY)
        self.fields = {name: REGISTRY[name].Args.model_fields for name in self.tools}
        self.trace_dir = base / "trace"
        self.pristine = snapshot(self.world.repo)
        self.outside_skip = (self.world.repo, self.trace_dir)
        self.outside_before = snapshot(base, self.outside_skip)
        self.current: tuple[int, float] | None = None
        self.hung: set[int] = set()
        self._stop = threading.Event()

    # generation

    def _field_value(self, rng: random.Random, field_name: str, annotation: Any) -> Any:
        text = str(annotation)
        if rng.random() < 0.15:
            return hostile_any(rng)
        if field_name in ("path",):
            return self.world.hostile_path(rng)
        if field_name == "glob":
            return rng.choice(["*.py", "*", "**", "!*.md", "\x00", "*\x00.py", "[", "{a,", "\ud800", "../*",
                               "/**", "**/../../*", "*" * 5000, "{" * 1000, "!", "", None, "**/canary*",
                               "../outside/**"])  # fmt: skip
        if field_name == "command":
            return rng.choice(HARMLESS_COMMANDS) if rng.random() < 0.6 else hostile_string(rng, big=False)
        if "bool" in text:
            return hostile_bool(rng)
        if "int" in text:
            return hostile_int(rng)
        if field_name in ("pattern", "old") and rng.random() < 0.4:
            return rng.choice(["add", "return", "alpha", "def", "canary", "secret", "root", ".", "x = 1"])
        return hostile_string(rng)

    def generate(self, index: int) -> ToolCase:
        rng = random.Random(f"{self.seed}:tool:{index}")
        roll = rng.random()
        if roll < 0.06:
            name = rng.choice(["", " ", "READ_FILE", "read_file ", "read-file", "\ud800", "x" * 5000, "__class__",
                               "run\x00", "finish2", "ls", "list", "symbols", "bash", "edit"])  # fmt: skip
        else:
            name = rng.choice(self.tools)
        fields = self.fields.get(name, self.fields["read_file"])
        shape = rng.random()
        ascii_only = rng.random() < 0.7
        if shape < 0.12:
            raw = rng.choice([
                "[]", "null", "42", '"a.py"', "true", "false", "", " ", "{", "}", "{}{}", "[1,2]", "\x00",
                '{"path": "a.py"} trailing', "\ufeff{}", "NaN", "-Infinity", "1e999", "{'path': 'a.py'}",
                '{"path": "a.py",}', '{"path": "\\ud800"}', '{"path": "\\u0000"}', '{"path": "\\x00"}',
            ])  # fmt: skip
            note = "non-object or invalid JSON"
        elif shape < 0.2:
            raw = rng.choice([deep(rng).text, to_json([deep(rng)]), to_json({"path": deep(rng)}), bignum(rng).text,
                              to_json({"path": "a.py", "start_line": bignum(rng)}),
                              to_json({k: bignum(rng) for k in fields})])  # fmt: skip
            note = "deep nesting or a 5,000-digit number"
        else:
            pairs: list[tuple[Any, Any]] = []
            for fname, info in fields.items():
                if rng.random() < 0.9:
                    pairs.append((fname, self._field_value(rng, fname, info.annotation)))
            if rng.random() < 0.1:
                pairs.append((rng.choice(["extra", "", "\ud800", "path", "__proto__"]), hostile_any(rng)))
            if rng.random() < 0.05:
                pairs = pairs + pairs  # duplicate keys
            raw = to_json(Obj(pairs), ascii_only)
            note = "hostile field values" + ("" if ascii_only else " (raw non-ASCII)")
        return ToolCase(index, name, raw, note)

    # execution

    def _watchdog(self) -> None:
        """Unblock a tool stuck on the FIFO (open it for writing and close it) and mark the case hung."""
        while not self._stop.wait(0.5):
            current = self.current
            if current is None or time.monotonic() - current[1] < CASE_TIMEOUT_S:
                continue
            self.hung.add(current[0])
            with contextlib.suppress(OSError):
                fd = os.open(self.world.repo / "fifo", os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)

    async def run(self, count: int, start: int = 0, verbose: bool = False) -> Report:
        from fastcode.agent.tool_exec import ToolExecutor
        from fastcode.core.emitter import Emitter
        from fastcode.core.events import Event
        from fastcode.tools import ToolContext

        report = Report("tools")
        started = time.perf_counter()
        writes: list[Path | None] = []
        ctx = ToolContext(root=self.world.repo, before_write=writes.append, env={})
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        emitter = Emitter("fuzz", self.trace_dir / "trace.jsonl", queue)
        executor = ToolExecutor(ctx, emitter, parallel=True)
        guard = threading.Thread(target=self._watchdog, daemon=True, name="fuzz-watchdog")
        guard.start()
        try:
            for index in range(start, start + count):
                if index % 250 == 0 and index != start:  # keep the trace file small
                    emitter.close()
                    (self.trace_dir / "trace.jsonl").unlink(missing_ok=True)
                    emitter = Emitter("fuzz", self.trace_dir / "trace.jsonl", queue)
                    executor.emit = emitter
                case = self.generate(index)
                writes.clear()
                self.current = (index, time.monotonic())
                failures = await self._run_case(case, ctx, executor, writes, verbose)
                self.current = None
                while not queue.empty():
                    queue.get_nowait()
                report.cases += 1
                report.add(failures)
        finally:
            self._stop.set()
            emitter.close()
        report.seconds = time.perf_counter() - started
        return report

    async def _run_case(
        self, case: ToolCase, ctx: Any, executor: Any, writes: list[Path | None], verbose: bool
    ) -> list[Failure]:
        from fastcode.core.events import ToolCallSpec
        from fastcode.tools import ToolError, ToolResult, execute, parse_arguments

        label = f"seed {self.seed} tool case {case.index}"
        failures: list[Failure] = []
        outputs: list[str] = []

        def crash(layer: str, exc: BaseException) -> None:
            failures.append(Failure("tools", "crash", f"{type(exc).__name__} ({layer})", _first_line(str(exc)),
                                    where_of(exc), label, case.repro()))  # fmt: skip

        execute_it = True
        if case.name == "run":  # validate everything, execute only the harmless commands
            try:
                _cls, args = parse_arguments(case.name, case.raw)
                execute_it = getattr(args, "command", None) in HARMLESS_COMMANDS
            except ToolError:
                pass
            except Exception as exc:
                crash("execute", exc)
                execute_it = False
        if execute_it:
            try:
                result = await asyncio.wait_for(execute(case.name, case.raw, ctx), CASE_TIMEOUT_S * 2)
                if isinstance(result, ToolResult):
                    outputs.append(result.output)
                else:
                    crash("execute", TypeError(f"execute returned {type(result).__name__}, not a ToolResult"))
            except ToolError as exc:
                outputs.append(str(exc))
            except Exception as exc:
                crash("execute", exc)
            try:
                call = ToolCallSpec(id=f"call_{case.index}", name=case.name, arguments=case.raw)
                outcomes = await asyncio.wait_for(executor.run_turn([call], step=1), CASE_TIMEOUT_S * 2)
                outputs.extend(o.output for o in outcomes)
            except Exception as exc:
                crash("ToolExecutor", exc)
        if case.index in self.hung:
            failures.append(Failure("tools", "crash", "Hang", f"no answer within {CASE_TIMEOUT_S:g} s", "", label,
                                    case.repro()))  # fmt: skip
        if verbose:
            print(f"case {case.index}: {case.repro()}")
            for out in outputs:
                print("  ->", _short(out, 400))
        failures += self._escapes(case, outputs, writes, label)
        for out in outputs:
            try:
                out.encode("utf-8")
            except UnicodeEncodeError as exc:
                message = f"the output of {case.name} holds a lone surrogate"
                repro = f"{case.repro()} -> {_short(out, 100)}"
                failures.append(Failure("tools", "unsafe-text", type(exc).__name__, message, "", label, repro))
                break
        return failures

    def _escapes(self, case: ToolCase, outputs: list[str], writes: list[Path | None], label: str) -> list[Failure]:
        found: list[str] = []
        if case.name != "run":
            for out in outputs:
                if self.world.token in out:
                    found.append("canary content in the tool output")
                if PASSWD_MARK in out:
                    found.append("/etc/passwd content in the tool output")
            repo = self.world.repo.resolve()
            for path in writes:
                if path is not None and not Path(path).resolve().is_relative_to(repo):
                    found.append(f"before_write called for {path} (outside the repository)")
        after = snapshot(self.world.base, self.outside_skip)
        changed = diff_snapshots(self.outside_before, after)
        if self.world.escape_marker.exists() or self.world.escape_marker.is_symlink():
            changed.append(f"created {self.world.escape_marker}")
            _force_rmtree(self.world.escape_marker)
        if changed and case.name != "run":
            found.append("outside the repository: " + ", ".join(changed[:5]))
        if changed:  # put the world back either way
            _force_rmtree(self.world.outside)
            _force_rmtree(self.world.base / "repo-evil")
            for extra in after.keys() - self.outside_before.keys():
                p = self.world.base / extra
                if (p.exists() or p.is_symlink()) and "/" not in extra:
                    _force_rmtree(p)
            self.world.build()
            self.outside_before = snapshot(self.world.base, self.outside_skip)
        repo_now = snapshot(self.world.repo)
        repo_changes = diff_snapshots(self.pristine, repo_now)
        protected = [c for c in repo_changes if re.search(r"(^|/)\.(git|fastcode)(/|$)", c.split(" ", 1)[1], re.I)]
        if protected and case.name != "run":
            found.append("wrote under .git/ or .fastcode/: " + ", ".join(protected[:3]))
        if repo_changes:
            self.world.build_repo()
            self.pristine = snapshot(self.world.repo)
        return [Failure("tools", "escape", "Escape", what, "", label, case.repro()) for what in dict.fromkeys(found)]


def run_tool_fuzz(count: int, seed: int, *, start: int = 0, verbose: bool = False) -> Report:
    with tempfile.TemporaryDirectory(prefix="fastcode-fuzz-tools-") as tmp:
        fuzzer = ToolFuzzer(seed, Path(tmp))
        return asyncio.run(fuzzer.run(count, start=start, verbose=verbose))


# ---------------------------------------------------------------------------------------------- part 2: raw SSE server


@dataclass
class RawResponse:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "text/event-stream")])
    chunks: list[bytes] = field(default_factory=list)


def sse(data: Any, ascii_only: bool = True) -> bytes:
    text = data.text if isinstance(data, Raw) else to_json(data, ascii_only)
    return b"data: " + text.encode("utf-8", "surrogatepass") + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chunk(delta: Any = None, finish: Any = None, index: Any = 0, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    choices = [] if delta is None else [{"index": index, "delta": delta, "finish_reason": finish}]
    return base | {"choices": choices} | extra


FINISH_TEXT = json.dumps({"thought": "done", "tool_calls": [{"name": "finish", "arguments": {"summary": "fuzz done"}}]})


def finish_response() -> RawResponse:
    return RawResponse(chunks=[sse(chunk({"role": "assistant", "content": ""})),
                               sse(chunk({"content": FINISH_TEXT})), sse(chunk({}, "stop")), DONE])  # fmt: skip


class RawServer:
    """One in-process HTTP server for every raw run: `/<key>/v1/...` routes to that run's queue of responses."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, list[RawResponse]] = {}
        self.served: dict[str, int] = {}
        self.leaks: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                key = self.path.strip("/").split("/")[0]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                warmup = isinstance(body, dict) and 1 in (body.get("max_tokens"), body.get("max_completion_tokens"))
                with owner.lock:
                    token = owner.tokens.get(key)
                    if token and token.encode() in raw:
                        owner.leaks[key] = owner.leaks.get(key, 0) + 1
                    queue = owner.queues.get(key)
                    if warmup or queue is None:
                        response = finish_response()
                    elif queue:
                        response = queue.pop(0)
                        owner.served[key] = owner.served.get(key, 0) + 1
                    else:
                        response = finish_response()
                try:
                    self.send_response(response.status)
                    for name, value in response.headers:
                        self.send_header(name, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for piece in response.chunks:
                        self.wfile.write(piece)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="fuzz-raw-sse")
        self.thread.start()

    def base_url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{key}/v1"

    def register(self, key: str, responses: list[RawResponse], token: str) -> None:
        with self.lock:
            self.queues[key], self.tokens[key], self.served[key], self.leaks[key] = list(responses), token, 0, 0

    def release(self, key: str) -> tuple[int, int]:
        """(responses served, requests that carried the canary token); forgets the run."""
        with self.lock:
            self.queues.pop(key, None)
            self.tokens.pop(key, None)
            return self.served.pop(key, 0), self.leaks.pop(key, 0)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------- part 2: responses


@dataclass
class Planned:
    label: str
    turn: dict[str, Any] | None = None
    """A scripted-server turn."""
    raw: RawResponse | None = None
    """A raw response (wire level)."""
    detail: str = ""


@dataclass
class RunPlan:
    index: int
    backend: str
    """"scripted" or "raw"."""
    tool_mode: str
    json_mode: bool
    responses: list[Planned]

    def repro(self, served: int | None = None) -> str:
        """The run's shape; with `served`, the response served last first (the likely trigger of an abort)."""
        mode = f"tool_mode={self.tool_mode}{'' if self.json_mode else ', human output'}"
        head = f"{self.backend} server, {mode}"
        if served:
            last = self.responses[min(served, len(self.responses)) - 1]
            head += f"; last served (response {served}): {last.label}: {_short(last.detail, 300)}"
        shown = "; ".join(f"{p.label}: {_short(p.detail, 120)}" for p in self.responses)
        return f"{head}; all responses: {shown}"


PATHS_E2E = ["a.py", "../outside/canary.txt", "link_out", "link_outdir/canary.py", "link_abs_out", "/etc/passwd",
             "loop1", "selfloop", "a.py\x00", "\ud800", "sub/up/canary.txt", ".git/config", "new.py", "x" * 5000,
             "../../", "link_in", "sub/b.txt"]  # fmt: skip


class ResponseGen:
    """Fuzzed model responses, as scripted turns or raw SSE bytes."""

    def __init__(self, rng: random.Random, outside: Path) -> None:
        self.rng = rng
        self.outside = outside

    def path(self) -> str:
        rng = self.rng
        if rng.random() < 0.1:
            return str(self.outside / "canary.txt")
        return rng.choice(PATHS_E2E)

    def args(self, name: str) -> Any:
        """Arguments for a call to `name`: usually an object with hostile values, sometimes any JSON at all."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            return Raw(rng.choice(["[1,2]", "[]", "null", "42", '"a.py"', "true", "", "{", "[[", '{"path": "a.py"',
                                   deep(rng).text, bignum(rng).text, "NaN", "1e999", "{}{}"]))  # fmt: skip
        if roll < 0.35:
            return {"path": "a.py", "start_line": bignum(rng)} if rng.random() < 0.5 else {"summary": deep(rng)}
        values: dict[str, Any] = {
            "read_file": {"path": self.path(), "start_line": hostile_int(rng)},
            "search": {"pattern": rng.choice(["add", "canary", "\x00", "\ud800", "(", "def"]), "path": self.path(),
                       "glob": rng.choice([None, "*", "\x00", "\ud800", "../*"])},
            "outline": {"path": self.path()},
            "edit_file": {"path": self.path(), "old": rng.choice(["a + b", "\ud800", "", "zzz"]),
                          "new": hostile_string(rng, big=False)},
            "write_file": {"path": self.path(), "content": hostile_string(rng, big=False)},
            "run": {"command": rng.choice(HARMLESS_COMMANDS), "timeout_s": rng.choice([1, 5, 0, -1, bignum(rng)])},
            "finish": {"summary": hostile_string(rng, big=False)},
        }.get(name, {hostile_string(rng, big=False): hostile_any(rng)})  # fmt: skip
        if rng.random() < 0.15:
            values[rng.choice(["extra", "\ud800", ""])] = hostile_any(rng)
        return values

    def name(self) -> str:
        rng = self.rng
        if rng.random() < 0.2:
            return rng.choice(["", " ", "\ud800", "x" * 3000, "read_file\x00", "READ_FILE", "tool", "functions.run",
                               "<tool_call>", "finish "])  # fmt: skip
        return rng.choice(["read_file", "read_file", "search", "outline", "edit_file", "write_file", "run", "finish"])

    def args_text(self, value: Any) -> str:
        return value.text if isinstance(value, Raw) else to_json(value, self.rng.random() < 0.7)

    # scripted turns

    SCRIPTED_LIMIT = 30_000
    """The scripted server streams 4 characters per chunk: bigger turns (deep nesting, long strings) would cost
    seconds each; they are fuzzed through the raw server instead."""

    def turn(self) -> Planned:
        for _ in range(8):
            planned = self._turn()
            if len(repr(planned.turn)) <= self.SCRIPTED_LIMIT:
                return planned
        return Planned("scripted calls", turn=(turn := {"tool_calls": [{"name": "read_file", "arguments": "[1,2]"}]}),
                       detail=repr(turn))  # fmt: skip

    def _turn(self) -> Planned:
        rng = self.rng
        kinds = ["content", "calls", "calls", "calls", "many_calls", "text_calls", "text_garbage", "reasoning",
                 "finish_odd", "error", "finish_reason"]  # fmt: skip
        kind = rng.choice(kinds)
        turn: dict[str, Any] = {}
        if kind == "content":
            turn["content"] = hostile_string(rng, big=False)[:9000]
            if rng.random() < 0.5:
                turn["tool_calls"] = [{"name": "read_file", "arguments": {"path": "a.py"}}]
        elif kind == "calls":
            calls = []
            for _ in range(rng.randint(1, 4)):
                name = self.name()
                calls.append({"name": name, "arguments": self.args_text(self.args(name))})
            turn["tool_calls"] = calls
            if rng.random() < 0.3:
                turn["content"] = hostile_string(rng, big=False)[:2000]
        elif kind == "many_calls":
            n = rng.choice([7, 20, 64, 200])
            turn["tool_calls"] = [{"name": rng.choice(["read_file", "search", "outline"]),
                                   "arguments": self.args_text(self.args("read_file"))} for _ in range(n)]  # fmt: skip
        elif kind == "text_calls":
            name = self.name()
            turn["tool_calls"] = [{"name": name, "arguments": self.args_text(self.args(name))}]
            turn["text_format"] = rng.choice(["json", "fenced", "tool_call", "tools", "bare"])
            turn["content"] = rng.choice(["", "thinking { [", "\ud800", "```", "<tool_call>", "[[[["])
        elif kind == "text_garbage":
            turn["content"] = self.garbage_text()
        elif kind == "reasoning":
            turn["reasoning"] = hostile_string(rng, big=False)[:6000]
            turn["tool_calls"] = [{"name": "read_file", "arguments": {"path": "a.py"}}]
        elif kind == "finish_odd":
            summary = rng.choice([hostile_string(rng, big=False)[:8000], 5, None, [1], {"a": 1}, bignum(rng)])
            calls = [{"name": "finish", "arguments": to_json({"summary": summary})}]
            if rng.random() < 0.5:
                calls.insert(0, {"name": "write_file", "arguments": {"path": self.path(), "content": "x\n"}})
            if rng.random() < 0.3:
                calls.append({"name": "finish", "arguments": {"summary": "\ud800 twice"}})
            turn["tool_calls"] = calls
        elif kind == "error":
            status = rng.choice([400, 404, 409, 422, 429, 500, 503])
            turn["error"] = {"status": status, "message": hostile_string(rng, big=False)[:2000]}
        else:
            turn["finish_reason"] = rng.choice(["length", "content_filter", "\ud800", "", "x" * 1000, "tool_calls"])
            turn["content"] = rng.choice(["", "partial answer", "\ud800"])
        return Planned(f"scripted {kind}", turn=turn, detail=repr(turn))

    def garbage_text(self) -> str:
        rng = self.rng
        big = bignum(rng).text
        return rng.choice([
            '{"tool_calls": [{"name": "read_file", "arguments": ' + big + "}]}",
            '{"thought": "x", "tool_calls": [{"name": "finish", "arguments": {"summary": ' + big + "}}]}",
            '{"name": "finish", "summary": ' + big + "}",
            '<tool_call>{"name": "read_file", "arguments": {"path": ' + big + "}}</tool_call>",
            '```json\n{"name": "read_file", "arguments": "' + "[" * 3000 + '"}\n```',
            '{"name": "read_file", "arguments": ' + deep(rng).text + "}",
            "[" * 100_000,
            "{" * 50_000,
            '{"tool_calls": ' + "[" * 5000 + "]" * 5000 + "}",
            '{"tool_calls": [{"function": {"name": "read_file", "arguments": "{\\"path\\": \\"\\ud800\\"}"}}]}',
            '{"tool_calls": [{"name": "\\ud800", "arguments": {}}]}',
            '{"tool_calls": [{"name": "read_file", "arguments": {"path": "\\ud800"}}]}',
            '{"tool_calls": [{"name": "read_file", "arguments": [1, 2]}]}',
            '{"tool_calls": [{"name": "read_file", "arguments": null}]}',
            '{"tool_calls": {"name": "finish", "arguments": 5}}',
            '{"name": 5, "arguments": {}}',
            '{"tool_calls": [' + ",".join(['{"name": "outline", "arguments": {"path": "a.py"}}'] * 300) + "]}",
            "{}" * 5000,
            "\x00{\x00}",
        ])  # fmt: skip

    # raw responses

    def raw(self) -> Planned:
        rng = self.rng
        kind = rng.choice(["chunk_shape", "chunk_shape", "choices", "delta", "tool_calls", "tool_calls", "usage",
                           "error_event", "bytes", "huge", "huge", "http", "sse_syntax", "native_call",
                           "native_call", "surrogate_fields", "many_chunks", "cut"])  # fmt: skip
        role = sse(chunk({"role": "assistant", "content": ""}))
        end = [sse(chunk({}, "stop")), DONE]
        detail = ""
        body: list[bytes]
        resp = RawResponse()
        if kind == "chunk_shape":
            odd = rng.choice(["[1,2,3]", "[]", "null", "42", '"str"', "true", '{"choices": [', "{}", "{,}",
                              deep(rng).text, '{"created": ' + bignum(rng).text + "}", "NaN", "[DONE"])  # fmt: skip
            body, detail = [role, sse(Raw(odd)), sse(chunk({"content": "after"})), *end], f"a chunk that is {odd!r}"
        elif kind == "choices":
            odd = rng.choice([{"a": 1}, "x", [None], [1], [[]], None, [{"index": 0}], [{"delta": {"content": "x"}}],
                              [{"index": "1", "delta": {"content": "x"}}], [{"index": -1, "delta": {}}],
                              [{"index": 10**20, "delta": {"content": "x"}}], [{"index": bignum(rng), "delta": {}}],
                              [{"index": None, "delta": {"content": "x"}}], [{"index": 1.5, "delta": {}}],
                              [{"index": 1, "delta": {"content": "x"}, "finish_reason": "stop"}]])  # fmt: skip
            body, detail = [role, sse(chunk() | {"choices": odd}), *end], f"choices = {_short(to_json(odd), 120)}"
        elif kind == "delta":
            odd = rng.choice([[], "x", None, 5, {"content": 5}, {"content": ["a"]}, {"content": {"x": 1}},
                              {"role": "tool"}, {"role": 5}, {"reasoning_content": [1]}, {"reasoning": 5},
                              {"content": "\ud800\udfff"}, {"content": "a\x00b"}, {"refusal": "no"},
                              {"function_call": {"name": "read_file", "arguments": "{}"}}])  # fmt: skip
            finish = rng.choice([None, None, "stop", 5, "\ud800", {}, "bogus"])
            body, detail = (
                [role, sse(chunk(odd, finish)), *end],
                f"delta = {_short(to_json(odd), 120)}, finish={finish!r}",
            )
        elif kind == "tool_calls":
            odd = rng.choice([
                "x", {}, [None], [1], [{}], [{"index": None}], [{"index": "0", "function": {"name": "read_file"}}],
                [{"function": {"name": "read_file", "arguments": "{}"}}], [{"index": -1, "function": {"name": "x"}}],
                [{"index": 10**9, "id": "c", "function": {"name": "finish", "arguments": "{}"}}],
                [{"index": 0, "function": None}], [{"index": 0, "function": "read_file"}],
                [{"index": 0, "id": 5, "function": {"name": 5, "arguments": 5}}],
                [{"index": 0, "id": "c", "function": {"name": "read_file", "arguments": {"path": "a.py"}}}],
                [{"index": 0, "id": "\ud800", "type": "function", "function": {"name": "read_file",
                                                                                "arguments": '{"path": "a.py"}'}}],
                [{"index": 0, "id": "c", "type": "\ud800", "function": {"name": "finish", "arguments": "{}"}}],
                [{"index": 0, "id": "c" * 100_000, "function": {"name": "outline", "arguments": '{"path": "a.py"}'}}],
                [{"index": 0, "id": "a", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}},
                 {"index": 0, "id": "b", "function": {"name": "finish", "arguments": '{"summary": "x"}'}}],
            ])  # fmt: skip
            parts = [sse(chunk({"tool_calls": odd}))]
            if rng.random() < 0.5:  # a second delta for the same call
                parts.append(sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": rng.choice(
                    ["}", "{", "\ud800", "[1]", "null"])}}]})))  # fmt: skip
            body = [role, *parts, sse(chunk({}, "tool_calls")), DONE]
            detail = f"tool_calls = {_short(to_json(odd), 160)}"
        elif kind == "usage":
            odd = rng.choice([
                {"usage": "x"}, {"usage": []}, {"usage": {"prompt_tokens": "abc"}}, {"usage": {"prompt_tokens": -5}},
                {"usage": {"prompt_tokens": Raw("1e400")}}, {"usage": {"completion_tokens": bignum(rng)}},
                {"usage": {"prompt_tokens": 5, "prompt_tokens_details": "x"}},
                {"usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": "x"}}},
                {"timings": {"cache_n": "abc"}}, {"timings": {"prompt_n": Raw("1e999")}},
                {"timings": {"predicted_n": [1]}}, {"timings": {"cache_n": Raw("NaN")}}, {"timings": "x"},
                {"timings": {"prompt_n": 1.5e300}}, {"x_groq": {"usage": {"prompt_tokens": "zz"}}},
                {"x_groq": {"usage": {"prompt_tokens_details": 5}}}, {"x_groq": "x"},
            ])  # fmt: skip
            final = chunk(None) | odd
            body = [role, sse(chunk({"content": FINISH_TEXT if rng.random() < 0.3 else "hi"})),
                    sse(chunk({}, "stop")), sse(final), DONE]  # fmt: skip
            detail = f"a final chunk with {_short(to_json(odd), 120)}"
        elif kind == "error_event":
            odd = rng.choice([
                b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n',
                b'data: {"error": "overloaded"}\n\n',
                b'data: {"error": {"message": 5}}\n\n',
                b'data: {"error": {"message": "\\ud800"}}\n\n',
                b'event: error\ndata: {"error": {"message": "boom"}}\n\n',
                b'event: thread.message\ndata: {"choices": []}\n\n',
                b'event: thread.error\ndata: {"error": {"message": "x"}}\n\n',
                b"event: error\ndata: not json\n\n",
            ])  # fmt: skip
            body, detail = [role, sse(chunk({"content": "partial"})), odd, DONE], f"a stream with {odd!r}"
        elif kind == "bytes":
            odd = rng.choice(
                [
                    b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n',
                    b"data: \xc3\x28\n\n",
                    b"\xef\xbb\xbfdata: [DONE]\n\n",
                    b"data: \x00\n\n",
                    b'data: {"choices": [{"index": 0, "delta": {"content": "\xed\xa0\x80"}}]}\n\n',
                ]
            )
            body, detail = [role, odd, *end], f"bytes {odd!r}"
        elif kind == "huge":
            size = rng.choice([1, 2, 3, 5, 8]) * 1_000_000
            shape = rng.choice(["one_event", "chunks", "args", "reasoning"])
            if shape == "one_event":
                body = [role, sse(chunk({"content": "x" * size})), *end]
            elif shape == "chunks":
                piece = sse(chunk({"content": "y" * 65_536}))
                body = [role, *[piece] * (size // 65_536), *end]
            elif shape == "reasoning":
                body = [role, sse(chunk({"reasoning_content": "r" * size})), sse(chunk({"content": "ok"})), *end]
            else:
                args = json.dumps({"path": "big.txt", "content": "z" * size})
                head = {"index": 0, "id": "c1", "type": "function", "function": {"name": "write_file", "arguments": ""}}
                body = [role, sse(chunk({"tool_calls": [head]}))]
                body += [sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 65_536]}}]}))
                         for i in range(0, len(args), 65_536)]  # fmt: skip
                body += [sse(chunk({}, "tool_calls")), DONE]
            detail = f"{size // 1_000_000} MB {shape}"
        elif kind == "http":
            choice = rng.choice(["json200", "html", "empty", "500list", "400listerr", "418", "404surrogate",
                                 "200done", "text_plain"])  # fmt: skip
            detail = choice
            if choice == "json200":
                payload = {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": FINISH_TEXT}, "finish_reason": "stop"}
                    ],
                }
                resp.headers, body = [("Content-Type", "application/json")], [json.dumps(payload).encode()]
            elif choice == "html":
                resp.headers, body = [("Content-Type", "text/html")], [b"<html><body>502 Bad Gateway</body></html>"]
            elif choice == "empty":
                resp.headers, body = [("Content-Type", "text/event-stream"), ("Content-Length", "0")], []
            elif choice == "500list":
                resp.status, body = 500, [b"[1,2]"]
            elif choice == "400listerr":
                resp.status, resp.headers, body = 400, [("Content-Type", "application/json")], [b'{"error": [1]}']
            elif choice == "418":
                resp.status, body = 418, [b"teapot \xff"]
            elif choice == "404surrogate":
                resp.status, resp.headers = 404, [("Content-Type", "application/json")]
                body = [b'{"error": {"message": "\\ud800 model", "code": "\\udfff"}}']
            elif choice == "200done":
                body = [DONE]
            else:
                resp.headers, body = [("Content-Type", "text/plain")], [b"hello"]
        elif kind == "sse_syntax":
            good = to_json(chunk({"content": FINISH_TEXT}))
            odd = rng.choice([f"data:{good}\n\n", f"data: {good}\r\n\r\n", f": ping\n\ndata: {good}\n\n",
                              f"retry: x\nid: \x00\ndata: {good}\n\n", f"data: {good}\n", f"event:\ndata: {good}\n\n",
                              f"data: {good[:20]}\ndata: {good[20:]}\n\n", f"DATA: {good}\n\n"])  # fmt: skip
            body, detail = [role, odd.encode(), *end], f"SSE syntax {odd[:30]!r}"
        elif kind == "native_call":
            calls = []
            for index in range(rng.choice([1, 1, 2, 3, 40])):
                name = self.name()
                calls.append({"index": index, "id": f"call_{index}", "type": "function",
                              "function": {"name": name, "arguments": self.args_text(self.args(name))}})  # fmt: skip
            body = [role, *[sse(chunk({"tool_calls": [c]})) for c in calls], sse(chunk({}, "tool_calls")), DONE]
            detail = f"native calls {_short(to_json([c['function'] for c in calls]), 300)}"
        elif kind == "surrogate_fields":
            odd = rng.choice([{"model": "\ud800"}, {"id": "\udfff"}, {"system_fingerprint": "\ud800"},
                              {"object": "\ud800"}, {"service_tier": "\ud800"}])  # fmt: skip
            body = [role, sse(chunk({"content": "x"}) | odd), *end]
            detail = f"chunk with {to_json(odd)}"
        elif kind == "many_chunks":
            n = rng.choice([5_000, 20_000])
            piece = sse(chunk({"content": "a"}))
            body, detail = [role, *[piece] * n, *end], f"{n} one-character chunks"
        else:
            cut = to_json(chunk({"content": "cut here"}))
            body = [role, sse(chunk({"content": "x"})), b"data: " + cut[: rng.randint(1, len(cut) - 1)].encode()]
            detail = "stream cut mid-chunk, no [DONE]"
        resp.chunks = body
        return Planned(f"raw {kind}", raw=resp, detail=detail)


class E2EFuzzer:
    def __init__(self, seed: int, base: Path, jobs: int = 2) -> None:
        self.seed = seed
        self.base = base
        self.jobs = jobs
        self.template = base / "template"
        self.token = hashlib.sha1(f"e2e-canary-{seed}-{os.getpid()}".encode()).hexdigest()
        self._build_template()
        self.raw_server = RawServer()
        self.hook = base / "hook.py"
        self.hook.write_text(HOOK)
        self.env = self._env()

    def _build_template(self) -> None:
        repo = self.template / "repo"
        world = World(self.template, self.token)
        world.build(fifo=False)
        _force_rmtree(repo / ".git")
        (repo / "README.md").write_text("# fuzz repo\n")
        (repo / ".gitignore").write_text("*.log\n")
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
            subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=_git_env())

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FASTCODE_"))}
        env.pop("CI", None)
        env.update(_git_env())
        env["XDG_CONFIG_HOME"] = str(self.base / "xdg-config")
        env["XDG_CACHE_HOME"] = str(self.base / "xdg-cache")
        env["FASTCODE_AGENT__TEST_RUNNER_KEEP_ALIVE"] = "0"
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
        return env

    def plan(self, index: int) -> RunPlan:
        rng = random.Random(f"{self.seed}:run:{index}")
        backend = "raw" if rng.random() < 0.4 else "scripted"
        gen = ResponseGen(rng, self.base / f"run-{index}" / "outside")
        responses = [gen.raw() if backend == "raw" else gen.turn() for _ in range(rng.choice([1, 2, 2, 3, 3, 4]))]
        tool_mode = rng.choice(["auto", "auto", "native", "text"])
        return RunPlan(index, backend, tool_mode, rng.random() < 0.8, responses)

    def run(self, responses: int, start: int = 0, verbose: bool = False) -> Report:
        report = Report("responses")
        started = time.perf_counter()
        plans: list[RunPlan] = []
        template_before = snapshot(self.template)
        index = start
        while sum(len(p.responses) for p in plans) < responses:
            plans.append(self.plan(index))
            index += 1
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
                for plan, (served, failures) in zip(plans, pool.map(lambda p: self.run_one(p, verbose), plans),
                                                    strict=True):  # fmt: skip
                    report.runs += 1
                    report.cases += len(plan.responses)
                    report.served += served
                    report.add(failures)
        finally:
            self.raw_server.stop()
        changed = diff_snapshots(template_before, snapshot(self.template))
        if changed:  # the runs' absolute symlinks point into the template: outside every run's repository
            what = "outside the repository (template): " + ", ".join(changed[:5])
            report.add([Failure("responses", "escape", "Escape", what, "", f"seed {self.seed}, some run", "")])
        report.seconds = time.perf_counter() - started
        return report

    def run_one(self, plan: RunPlan, verbose: bool = False) -> tuple[int, list[Failure]]:
        from fastcode.testing import ScriptedServer

        run_dir = self.base / f"run-{plan.index}"
        shutil.copytree(self.template, run_dir, symlinks=True)
        repo, key = run_dir / "repo", f"run{plan.index}"
        tb_file = run_dir / "internal-tracebacks.txt"
        before = snapshot(run_dir, (repo,))
        server = None
        if plan.backend == "scripted":
            turns = [p.turn for p in plan.responses]
            finish = {"tool_calls": [{"name": "finish", "arguments": {"summary": "fuzz done"}}]}
            server = ScriptedServer({"turns": [*turns, finish, finish]}).start()
            base_url = server.base_url
        else:
            self.raw_server.register(key, [p.raw for p in plan.responses if p.raw is not None], self.token)
            base_url = self.raw_server.base_url(key)
        args = [sys.executable, str(self.hook), "exec", "fuzz the tools", "--base-url", base_url, "--model", "m",
                "--timeout", "40", "--max-steps", str(len(plan.responses) + 4),
                "-c", "agent.max_retries=1", "-c", "agent.test_cmd='true'", "-c", "agent.stuck_after=6",
                "-c", "models.default.request_timeout_s=15",
                "-c", f"models.default.tool_mode='{plan.tool_mode}'"]  # fmt: skip
        if plan.json_mode:
            args.append("--json")
        env = self.env | {"FUZZ_TB_FILE": str(tb_file)}
        hung = False
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, timeout=RUN_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            hung, code = True, None
            out, err = exc.stdout or b"", exc.stderr or b""
        elapsed = time.perf_counter() - t0
        served, leaks = 0, 0
        if server is not None:
            served = len(plan.responses) - max(0, server.remaining - 2)
            leaks = sum(self.token in json.dumps(body) for body in server.requests)
            server.stop()
        else:
            served, leaks = self.raw_server.release(key)
        served = min(served, len(plan.responses))
        failures = self.classify(plan, code, out, err, tb_file, run_dir, before, hung, leaks, served)
        if verbose:
            print(f"run {plan.index}: exit {code} in {elapsed:.1f} s, {served}/{len(plan.responses)} served")
            print("  plan:", plan.repro())
            print("  stderr:", err.decode("utf-8", "replace")[-3000:])
            print("  stdout tail:", out.decode("utf-8", "replace")[-1500:])
        if not verbose:
            shutil.rmtree(run_dir, ignore_errors=True)
        return served, failures

    def classify(
        self, plan: RunPlan, code: int | None, out: bytes, err: bytes, tb_file: Path, run_dir: Path,
        before: dict[str, Any], hung: bool, leaks: int, served: int,
    ) -> list[Failure]:  # fmt: skip
        label = f"seed {self.seed} run {plan.index}"
        repro = plan.repro(served)
        failures: list[Failure] = []
        stderr = err.decode("utf-8", "replace")
        stdout = out.decode("utf-8", "replace")

        def fail(kind: str, exc_type: str, message: str, where: str = "") -> None:
            failures.append(Failure("responses", kind, exc_type, message, where, label, repro))

        if hung:
            fail("crash", "Hang", f"no exit within {RUN_TIMEOUT_S:g} s")
        elif code not in (0, 1, 3):
            fail("crash", f"exit {code}", _first_line(stderr) or f"exit code {code}")
        if "Traceback (most recent call last)" in stderr:
            exc_type, message, where = where_of_text(stderr)
            fail("crash", exc_type, message or _first_line(stderr), where)
        events, bad_lines = [], 0
        if plan.json_mode:
            for line in stdout.splitlines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    bad_lines += 1
            if not hung and (not events or events[-1].get("type") != "result"):
                fail("crash", "NoResult", f"--json stdout does not end with a result line ({bad_lines} bad lines)")
        for trace in (run_dir / "repo" / ".fastcode" / "runs").glob("*/trace.jsonl"):
            with contextlib.suppress(OSError):
                for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
                    with contextlib.suppress(ValueError):
                        events.append(json.loads(line))
        internal = [
            e for e in events if isinstance(e, dict) and e.get("type") == "error" and e.get("kind") == "internal"
        ]
        tbs = tb_file.read_text(encoding="utf-8", errors="replace").split("\n---\n") if tb_file.exists() else []
        tbs = [t for t in tbs if t.strip()]
        if internal or tbs or re.search(r"(?m)^fastcode: error: internal", stderr):
            for tb in tbs or [""]:
                if tb:
                    exc_type, message, where = where_of_text(tb)
                else:
                    message = internal[0].get("message", "") if internal else _first_line(stderr)
                    exc_type, where = message.split(":", 1)[0], ""
                fail("internal", exc_type, message, where)
        if self.token in stdout or self.token in stderr:
            fail("escape", "Escape", "canary content in fastcode's output")
        if leaks:
            fail("escape", "Escape", f"canary content in {leaks} request(s) sent to the model")
        changed = diff_snapshots(before, snapshot(run_dir, (run_dir / "repo", tb_file)))
        if changed:
            fail("escape", "Escape", "outside the repository: " + ", ".join(changed[:5]))
        return failures


HOOK = '''"""`python -m fastcode`, recording the traceback behind every `internal` error event in $FUZZ_TB_FILE."""
import os
import runpy
import sys
import traceback

from fastcode.core import emitter as _emitter

_original = _emitter.Emitter.__call__


def _call(self, cls, **fields):
    exc = sys.exc_info()[1]
    if fields.get("kind") == "internal" and exc is not None and os.environ.get("FUZZ_TB_FILE"):
        with open(os.environ["FUZZ_TB_FILE"], "a", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write("".join(traceback.format_exception(exc, chain=False)) + "\\n---\\n")
    return _original(self, cls, **fields)


_emitter.Emitter.__call__ = _call
sys.argv = ["fastcode", *sys.argv[1:]]
runpy.run_module("fastcode", run_name="__main__", alter_sys=True)
'''


def _git_env() -> dict[str, str]:
    return {"GIT_AUTHOR_NAME": "Fuzz", "GIT_AUTHOR_EMAIL": "fuzz@example.com", "GIT_COMMITTER_NAME": "Fuzz",
            "GIT_COMMITTER_EMAIL": "fuzz@example.com", "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip


def run_response_fuzz(count: int, seed: int, *, jobs: int = 2, start: int = 0, verbose: bool = False) -> Report:
    with tempfile.TemporaryDirectory(prefix="fastcode-fuzz-e2e-") as tmp:
        fuzzer = E2EFuzzer(seed, Path(tmp), jobs=jobs)
        return fuzzer.run(count, start=start, verbose=verbose)


@contextlib.contextmanager
def silence_scripted_server_errors() -> Iterator[None]:
    """A handler exception in the scripted server (our fuzz input, not fastcode) must not spam stderr."""
    from fastcode.testing import scripted_server

    original = scripted_server._Server.handle_error
    scripted_server._Server.handle_error = lambda self, request, address: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        scripted_server._Server.handle_error = original  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, default=1000, help="fuzzed model responses (0: skip part 2)")
    parser.add_argument("--tool-calls", type=int, default=10_000, help="fuzzed tool calls (0: skip part 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="fastcode runs at once")
    parser.add_argument("--replay-tool", type=int, metavar="I", help="run tool case I alone, verbosely")
    parser.add_argument("--replay-run", type=int, metavar="R", help="run end-to-end run R alone, verbosely")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    reports: list[Report] = []
    with silence_scripted_server_errors():
        if args.replay_tool is not None:
            reports.append(run_tool_fuzz(1, args.seed, start=args.replay_tool, verbose=True))
        elif args.replay_run is not None:
            with tempfile.TemporaryDirectory(prefix="fastcode-fuzz-e2e-") as tmp:
                fuzzer = E2EFuzzer(args.seed, Path(tmp), jobs=1)
                plan = fuzzer.plan(args.replay_run)
                report = Report("responses", cases=len(plan.responses), runs=1)
                served, failures = fuzzer.run_one(plan, verbose=True)
                report.served = served
                report.add(failures)
                fuzzer.raw_server.stop()
                reports.append(report)
        else:
            if args.tool_calls:
                reports.append(run_tool_fuzz(args.tool_calls, args.seed))
                print(f"tool calls done in {reports[-1].seconds:.1f} s", file=sys.stderr, flush=True)
            if args.responses:
                reports.append(run_response_fuzz(args.responses, args.seed, jobs=args.jobs))
    print(format_table(reports))
    served = [r for r in reports if r.part == "responses"]
    if served:
        print(f"\n(responses: {served[0].served} of {served[0].cases} scheduled responses were served; a run stops "
              "at its first abort)")  # fmt: skip
    return 0 if all(r.crashes == r.internal == r.escapes == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
