"""outline and fastcode.tools.symbols: tag queries per language, nesting, the fallback walk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastcode.tools import ToolContext, ToolError, execute
from fastcode.tools.symbols import QUERIES_DIR, Definition, definitions, language_for

PYTHON = '''import os


@decorator
class Foo(Base):
    """Doc."""

    def bar(self):
        def helper():
            return 1

        return helper()

    @property
    def baz(self):
        return 2


async def main():
    pass
'''

TYPESCRIPT = """export interface Shape {
  area(): number;
}

export class Circle implements Shape {
  constructor(private r: number) {}
  area(): number {
    return Math.PI * this.r ** 2;
  }
}

type Id = string;

export const make = (r: number): Circle => new Circle(r);

function helper() {}
"""

GO = """package geo

type Point struct {
	X, Y int
}

func (p *Point) Move(dx int) {
	p.X += dx
}

func New() Point {
	return Point{}
}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "foo.py").write_text(PYTHON)
    (root / "shapes.ts").write_text(TYPESCRIPT)
    (root / "geo.go").write_text(GO)
    return root


async def outline(root: Path, path: str, **extra: object) -> str:
    ctx = ToolContext(root=root, **extra)  # type: ignore[arg-type]
    return (await execute("outline", json.dumps({"path": path}), ctx)).output


async def test_python_outline(repo: Path) -> None:
    assert await outline(repo, "foo.py") == (
        "foo.py (python, 20 lines)\n"
        "class Foo  L4-16\n"
        "  method bar  L8-12\n"
        "    function helper  L9-10\n"
        "  method baz  L14-16\n"
        "function main  L19-20"
    )


async def test_typescript_outline(repo: Path) -> None:
    assert await outline(repo, "shapes.ts") == (
        "shapes.ts (typescript, 16 lines)\n"
        "interface Shape  L1-3\n"
        "  method area  L2-2\n"
        "class Circle  L5-10\n"
        "  method constructor  L6-6\n"
        "  method area  L7-9\n"
        "type Id  L12-12\n"
        "function make  L14-14\n"
        "function helper  L16-16"
    )


async def test_go_outline_names_the_receiver(repo: Path) -> None:
    assert await outline(repo, "geo.go") == (
        "geo.go (go, 13 lines)\nstruct Point  L3-5\nmethod Point.Move  L7-9\nfunction New  L11-13"
    )


async def test_outline_errors_and_cut(repo: Path) -> None:
    (repo / "notes.unknownext").write_text("hello\n")
    (repo / "empty.py").write_text("x = 1\n")
    with pytest.raises(ToolError, match=r"does not know the language of notes\.unknownext"):
        await outline(repo, "notes.unknownext")
    with pytest.raises(ToolError, match="outside the repository root"):
        await outline(repo, "../foo.py")
    assert await outline(repo, "empty.py") == "empty.py (python, 1 lines): no definitions found"
    cut = await outline(repo, "foo.py", max_output_chars=60)
    assert cut.splitlines()[-1] == "[... 4 more definitions; read_file the rest of the file]"


def test_definitions_api(repo: Path) -> None:
    found = definitions(repo / "foo.py")
    assert found[:2] == [
        Definition("class", "Foo", 4, 16, None),
        Definition("method", "bar", 8, 12, "Foo"),
    ]
    assert definitions(Path("x.py"), b"def f():\n    pass\n") == [Definition("function", "f", 1, 2, None)]
    assert definitions(Path("x.unknownext"), b"whatever") == []


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("a.py", "python"),
        ("a.JS", "javascript"),
        ("a.tsx", "tsx"),
        ("a.rs", "rust"),
        ("a.h", "c"),
        ("a.hpp", "cpp"),
        ("Dockerfile", "dockerfile"),
        ("Makefile", "make"),
        ("a.txt", None),
        ("noext", None),
    ],
)
def test_language_for(name: str, language: str | None) -> None:
    assert language_for(Path(name)) == language


@pytest.mark.parametrize("query_file", sorted(QUERIES_DIR.glob("*-tags.scm")), ids=lambda p: p.name)
def test_every_query_compiles(query_file: Path) -> None:
    from tree_sitter import Query
    from tree_sitter_language_pack import get_language

    query = Query(get_language(query_file.name.removesuffix("-tags.scm")), query_file.read_text())  # type: ignore[arg-type]
    names = {query.capture_name(i) for i in range(query.capture_count)}
    assert "name" in names
    assert any(name.startswith("definition.") for name in names)


@pytest.mark.parametrize(
    ("filename", "source", "expected"),
    [
        (
            "a.rs",
            "struct S {}\nimpl S {\n    fn new() -> S { S {} }\n}\n",
            [("struct", "S"), ("impl", "S"), ("method", "new")],
        ),
        ("A.java", "class A {\n  void m() {}\n}\n", [("class", "A"), ("method", "m")]),
        (
            "a.c",
            "struct P { int x; };\nstatic int *f(void) { return 0; }\n",
            [("struct", "P"), ("function", "f")],
        ),
        (
            "a.cpp",
            "namespace n {\nclass K {\n  void m() {}\n};\n}\n",
            [("namespace", "n"), ("class", "K"), ("method", "m")],
        ),
        (
            "a.rb",
            "module M\n  class C\n    def m; end\n  end\nend\n",
            [("module", "M"), ("class", "C"), ("method", "m")],
        ),
        (
            "a.js",
            "class A { m() {} }\nexport const f = () => 1;\n",
            [("class", "A"), ("method", "m"), ("function", "f")],
        ),
        # No query file for Kotlin or C#: the fallback walk still finds named declarations.
        ("a.kt", "class K {\n  fun m() {}\n}\n", [("class", "K"), ("method", "m")]),
        ("a.cs", "class C {\n  void M() {}\n}\n", [("class", "C"), ("method", "M")]),
    ],
)
def test_languages(filename: str, source: str, expected: list[tuple[str, str]]) -> None:
    assert [(d.kind, d.name) for d in definitions(Path(filename), source.encode())] == expected
