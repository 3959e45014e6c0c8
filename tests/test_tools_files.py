"""read_file, write_file and edit_file: formats, path safety, atomic writes, newline and mode preservation."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fastcode.tools import ToolContext, ToolError, execute


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def writes() -> list[Path | None]:
    return []


@pytest.fixture
def ctx(repo: Path, writes: list[Path | None]) -> ToolContext:
    return ToolContext(root=repo, before_write=writes.append)


async def call(ctx: ToolContext, name: str, **arguments: object) -> str:
    return (await execute(name, json.dumps(arguments), ctx)).output


# ---- read_file


async def test_read_numbers_lines(repo: Path, ctx: ToolContext) -> None:
    (repo / "a.py").write_text("x = 1\n\ny = 2\n")
    assert await call(ctx, "read_file", path="a.py") == "   1| x = 1\n   2| \n   3| y = 2"


async def test_read_range_and_crlf(repo: Path, ctx: ToolContext) -> None:
    (repo / "w.txt").write_bytes(b"one\r\ntwo\r\nthree\r\nfour\r\n")
    out = await call(ctx, "read_file", path="w.txt", start_line=2, end_line=3)
    assert out == (
        "   2| two\n   3| three\n[... file has 4 lines; showing 2-3. Call read_file with start_line=4 to read more.]"
    )


async def test_read_long_file_is_cut_with_a_note(repo: Path, ctx: ToolContext) -> None:
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 1235)))
    out = await call(ctx, "read_file", path="big.txt")
    lines = out.splitlines()
    assert lines[0] == "   1| line 1"
    assert lines[399] == " 400| line 400"
    assert lines[-1] == ("[... file has 1234 lines; showing 1-400. Call read_file with start_line=401 to read more.]")
    tail = await call(ctx, "read_file", path="big.txt", start_line=1200)
    assert tail.splitlines()[0] == "1200| line 1200"
    assert tail.splitlines()[-1] == "1234| line 1234"


async def test_read_respects_max_output_chars(repo: Path) -> None:
    (repo / "f.txt").write_text("".join(f"{'x' * 50}\n" for _ in range(100)))
    ctx = ToolContext(root=repo, max_output_chars=300)
    out = await call(ctx, "read_file", path="f.txt")
    assert len(out) < 500
    assert "Call read_file with start_line=6 to read more." in out


async def test_read_errors(repo: Path, ctx: ToolContext) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "main.py").write_text("pass\n")
    (repo / "blob.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    (repo / "short.txt").write_text("a\nb\n")
    with pytest.raises(ToolError, match="is a directory"):
        await call(ctx, "read_file", path="src")
    with pytest.raises(ToolError, match="binary"):
        await call(ctx, "read_file", path="blob.bin")
    with pytest.raises(ToolError, match=r"no such file: src/mian.py; did you mean src/main.py\?"):
        await call(ctx, "read_file", path="src/mian.py")
    with pytest.raises(ToolError, match=r"past the end of short\.txt, which has 2 lines"):
        await call(ctx, "read_file", path="short.txt", start_line=5)
    with pytest.raises(ToolError, match="before start_line"):
        await call(ctx, "read_file", path="short.txt", start_line=2, end_line=1)
    assert await call(ctx, "read_file", path="src/main.py") == "   1| pass"


async def test_read_empty_and_invalid_utf8(repo: Path, ctx: ToolContext) -> None:
    (repo / "empty.txt").write_text("")
    (repo / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert await call(ctx, "read_file", path="empty.txt") == "(empty.txt is empty)"
    assert await call(ctx, "read_file", path="latin1.txt") == "   1| caf\ufffd"


# ---- path safety (every file tool)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside.txt"
    secret.write_text("secret\n")
    return secret


@pytest.mark.parametrize(
    ("tool", "extra"),
    [
        ("read_file", {}),
        ("write_file", {"content": "pwned\n"}),
        ("edit_file", {"old": "secret", "new": "pwned"}),
    ],
)
async def test_paths_outside_the_repo_are_refused(
    repo: Path, ctx: ToolContext, outside: Path, writes: list[Path | None], tool: str, extra: dict
) -> None:
    (repo / "link.txt").symlink_to(outside)
    (repo / "linkdir").symlink_to(outside.parent)
    for path in ("../outside.txt", str(outside), "/etc/passwd", "link.txt", "linkdir/outside.txt"):
        with pytest.raises(ToolError, match="outside the repository root"):
            await call(ctx, tool, path=path, **extra)
    assert outside.read_text() == "secret\n"
    assert writes == []


async def test_symlink_inside_the_repo_is_allowed(repo: Path, ctx: ToolContext) -> None:
    (repo / "real.txt").write_text("hello\n")
    (repo / "alias.txt").symlink_to(repo / "real.txt")
    assert await call(ctx, "read_file", path="alias.txt") == "   1| hello"
    result = await execute("edit_file", json.dumps({"path": "alias.txt", "old": "hello", "new": "bye"}), ctx)
    assert result.changed_files == ["real.txt"]
    assert (repo / "alias.txt").is_symlink()
    assert (repo / "real.txt").read_text() == "bye\n"


# ---- write_file


async def test_write_creates_with_parents_then_overwrites(
    repo: Path, ctx: ToolContext, writes: list[Path | None]
) -> None:
    result = await execute("write_file", json.dumps({"path": "pkg/sub/new.py", "content": "a\nb\n"}), ctx)
    assert result.output == "created pkg/sub/new.py (2 lines)"
    assert result.changed_files == ["pkg/sub/new.py"]
    assert (repo / "pkg/sub/new.py").read_text() == "a\nb\n"
    assert await call(ctx, "write_file", path="pkg/sub/new.py", content="c") == "overwrote pkg/sub/new.py (1 lines)"
    assert (repo / "pkg/sub/new.py").read_text() == "c"
    assert writes == [repo.resolve() / "pkg/sub/new.py"] * 2
    assert sorted(p.name for p in (repo / "pkg/sub").iterdir()) == ["new.py"]  # no temp files left


async def test_write_keeps_mode_crlf_and_bom(repo: Path, ctx: ToolContext) -> None:
    script = repo / "run.sh"
    script.write_bytes(b"\xef\xbb\xbfecho a\r\necho b\r\n")
    script.chmod(0o751)
    await call(ctx, "write_file", path="run.sh", content="echo c\necho d\n")
    assert script.read_bytes() == b"\xef\xbb\xbfecho c\r\necho d\r\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o751


async def test_new_file_gets_umask_mode(repo: Path, ctx: ToolContext) -> None:
    await call(ctx, "write_file", path="n.txt", content="x\n")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((repo / "n.txt").stat().st_mode) == 0o666 & ~mask


async def test_write_onto_a_directory_is_refused(repo: Path, ctx: ToolContext) -> None:
    (repo / "d").mkdir()
    with pytest.raises(ToolError, match="is a directory"):
        await call(ctx, "write_file", path="d", content="x")


# ---- edit_file


async def test_edit_replaces_once_and_shows_a_snippet(repo: Path, ctx: ToolContext, writes: list[Path | None]) -> None:
    (repo / "m.py").write_text("".join(f"line{i}\n" for i in range(1, 11)))
    result = await execute("edit_file", json.dumps({"path": "m.py", "old": "line5\n", "new": "five\n"}), ctx)
    assert result.changed_files == ["m.py"]
    assert result.output == (
        "edited m.py: 1 replacement\n   2| line2\n   3| line3\n   4| line4\n   5| five\n   6| line6\n"
        "   7| line7\n   8| line8"
    )
    assert "five\nline6" in (repo / "m.py").read_text()
    assert writes == [repo.resolve() / "m.py"]


async def test_edit_not_found_gives_the_closest_line(repo: Path, ctx: ToolContext, writes: list[Path | None]) -> None:
    (repo / "m.py").write_text("def f():\n    return compute(1, 2)\n")
    with pytest.raises(ToolError) as err:
        await call(ctx, "edit_file", path="m.py", old="return compute(1,2)", new="return 0")
    assert str(err.value).startswith("old text not found in m.py. Closest match, at line 2")
    assert "   2|     return compute(1, 2)" in str(err.value)
    with pytest.raises(ToolError, match=r"old text not found in m\.py; no similar line"):
        await call(ctx, "edit_file", path="m.py", old="zzzzzzzz", new="y")
    assert writes == []


async def test_edit_not_unique_then_replace_all(repo: Path, ctx: ToolContext) -> None:
    (repo / "m.py").write_text("x = 1\ny = 2\nx = 1\n")
    with pytest.raises(ToolError) as err:
        await call(ctx, "edit_file", path="m.py", old="x = 1", new="x = 3")
    assert str(err.value) == ("old text occurs 2 times in m.py (lines 1, 3); pass more context or replace_all=true")
    out = await call(ctx, "edit_file", path="m.py", old="x = 1", new="x = 3", replace_all=True)
    assert out.startswith("edited m.py: 2 replacements; the first one:\n   1| x = 3")
    assert (repo / "m.py").read_text() == "x = 3\ny = 2\nx = 3\n"


async def test_edit_preserves_crlf_and_mode(repo: Path, ctx: ToolContext) -> None:
    path = repo / "w.txt"
    path.write_bytes(b"alpha\r\nbeta\r\ngamma\r\n")
    path.chmod(0o640)
    await call(ctx, "edit_file", path="w.txt", old="alpha\nbeta", new="one\ntwo\nthree")
    assert path.read_bytes() == b"one\r\ntwo\r\nthree\r\ngamma\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


async def test_edit_refusals(repo: Path, ctx: ToolContext, writes: list[Path | None]) -> None:
    (repo / "latin1.txt").write_bytes(b"caf\xe9\n")
    (repo / "ok.txt").write_text("same\n")
    with pytest.raises(ToolError, match=r"latin1.txt is not valid UTF-8 \(bad byte at offset 3\)"):
        await call(ctx, "edit_file", path="latin1.txt", old="caf", new="tea")
    with pytest.raises(ToolError, match="old is empty"):
        await call(ctx, "edit_file", path="ok.txt", old="", new="x")
    with pytest.raises(ToolError, match="identical"):
        await call(ctx, "edit_file", path="ok.txt", old="same", new="same")
    with pytest.raises(ToolError, match=r"no such file: nope\.txt"):
        await call(ctx, "edit_file", path="nope.txt", old="a", new="b")
    assert writes == []


@pytest.mark.parametrize(
    "path", [".git/config", ".git/hooks/pre-commit", ".GIT/config", ".fastcode/runs/x/meta.json", ".fastcode.toml"]
)
def test_writes_under_git_or_fastcode_are_refused(tmp_path: Path, path: str) -> None:
    from fastcode.tools.base import ToolError, writable_in_repo

    (tmp_path / ".git").mkdir()
    with pytest.raises(ToolError, match="never write"):
        writable_in_repo(tmp_path, path)
    assert writable_in_repo(tmp_path, "src/.gitignore") == tmp_path.resolve() / "src/.gitignore"
