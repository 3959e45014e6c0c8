"""Definitions in a source file (classes, functions, methods, ...) found with tree-sitter.

Owns the file name -> language map, the cached grammars and compiled tag queries (`queries/<lang>-tags.scm`,
each capturing `@name`, `@definition.<kind>` and optionally `@parent`), and the `Definition` record shared by
the outline tool and the repo map. A language without a query file falls back to a walk over `*_definition` /
`*_declaration` nodes that have a name. tree_sitter is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from tree_sitter import Language, Node, Query

QUERIES_DIR = Path(__file__).resolve().parent / "queries"

_FILENAMES: dict[str, str] = {
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "Makefile": "make",
    "makefile": "make",
    "GNUmakefile": "make",
    "CMakeLists.txt": "cmake",
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "Jenkinsfile": "groovy",
    "BUILD": "starlark",
    "BUILD.bazel": "starlark",
    "WORKSPACE": "starlark",
    "meson.build": "meson",
    "go.mod": "gomod",
    "go.sum": "gosum",
    ".gitignore": "gitignore",
    ".gitattributes": "gitattributes",
}

_EXTENSIONS: dict[str, str] = {
    **dict.fromkeys((".py", ".pyi", ".pyw"), "python"),
    **dict.fromkeys((".js", ".mjs", ".cjs", ".jsx"), "javascript"),
    **dict.fromkeys((".ts", ".mts", ".cts"), "typescript"),
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    **dict.fromkeys((".c", ".h"), "c"),
    **dict.fromkeys((".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp", ".inl"), "cpp"),
    **dict.fromkeys((".cu", ".cuh"), "cuda"),
    **dict.fromkeys((".rb", ".rake", ".gemspec"), "ruby"),
    ".cs": "csharp",
    **dict.fromkeys((".kt", ".kts"), "kotlin"),
    ".swift": "swift",
    **dict.fromkeys((".scala", ".sc"), "scala"),
    ".php": "php",
    ".lua": "lua",
    ".luau": "luau",
    **dict.fromkeys((".sh", ".bash", ".zsh"), "bash"),
    ".fish": "fish",
    **dict.fromkeys((".ex", ".exs"), "elixir"),
    **dict.fromkeys((".erl", ".hrl"), "erlang"),
    ".hs": "haskell",
    ".ml": "ocaml",
    ".mli": "ocaml_interface",
    **dict.fromkeys((".fs", ".fsx"), "fsharp"),
    ".fsi": "fsharp_signature",
    ".dart": "dart",
    ".jl": "julia",
    ".r": "r",
    ".zig": "zig",
    ".nim": "nim",
    ".odin": "odin",
    ".gleam": "gleam",
    ".elm": "elm",
    **dict.fromkeys((".clj", ".cljs", ".cljc", ".edn"), "clojure"),
    **dict.fromkeys((".lisp", ".cl"), "commonlisp"),
    ".el": "elisp",
    ".scm": "scheme",
    ".rkt": "racket",
    **dict.fromkeys((".groovy", ".gradle"), "groovy"),
    **dict.fromkeys((".pl", ".pm"), "perl"),
    ".ps1": "powershell",
    ".m": "objc",
    ".sol": "solidity",
    ".proto": "proto",
    ".graphql": "graphql",
    ".sql": "sql",
    **dict.fromkeys((".tf", ".tfvars"), "terraform"),
    ".hcl": "hcl",
    ".nix": "nix",
    ".vue": "vue",
    ".svelte": "svelte",
    **dict.fromkeys((".html", ".htm"), "html"),
    ".css": "css",
    ".scss": "scss",
    ".json": "json",
    **dict.fromkeys((".yaml", ".yml"), "yaml"),
    ".toml": "toml",
    ".xml": "xml",
    **dict.fromkeys((".md", ".markdown"), "markdown"),
    ".rst": "rst",
    ".tex": "latex",
    ".cmake": "cmake",
    ".mk": "make",
    ".bzl": "starlark",
    **dict.fromkeys((".sv", ".svh"), "verilog"),
    **dict.fromkeys((".vhd", ".vhdl"), "vhdl"),
    ".glsl": "glsl",
    ".wgsl": "wgsl",
    ".hlsl": "hlsl",
    ".vim": "vim",
    ".ini": "ini",
}

# Grammars close enough to share another language's query file.
_QUERY_ALIASES: dict[str, str] = {"tsx": "typescript", "cuda": "cpp", "arduino": "cpp"}

# A "function" directly inside one of these is reported as a "method".
_CONTAINERS = frozenset({"class", "interface", "struct", "trait", "impl", "enum", "record", "object"})

_MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class Definition:
    """One definition: its kind ("class", "function", "method", ...), name, 1-based inclusive line range, and
    the name of the definition enclosing it (or a Go method's receiver type)."""

    kind: str
    name: str
    start_line: int
    end_line: int
    parent: str | None = None


class _Found(NamedTuple):
    pattern: int
    kind: str
    name: str
    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    parent: str | None


def language_for(path: Path) -> str | None:
    """The tree-sitter-language-pack name for a file, from its name or extension; None when unknown."""
    name = path.name
    if name in _FILENAMES:
        return _FILENAMES[name]
    if name.startswith(("Dockerfile.", "Containerfile.")):
        return "dockerfile"
    return _EXTENSIONS.get(path.suffix.lower())


def definitions(path: Path, source: bytes | None = None) -> list[Definition]:
    """The definitions in a file, in source order; [] for an unknown language.

    Reads `path` when `source` is None (raising OSError if it cannot)."""
    lang = language_for(path)
    if lang is None:
        return []
    language = _language(lang)
    if language is None:
        return []
    if source is None:
        source = path.read_bytes()
    from tree_sitter import Parser

    root = Parser(language).parse(source).root_node
    query = _query(lang)
    found = _from_query(query, root) if query is not None else _from_walk(root)
    return _nest(found)


@cache
def _language(lang: str) -> Language | None:
    from tree_sitter_language_pack import get_language

    try:
        return get_language(lang)  # type: ignore[arg-type]
    except (LookupError, ValueError):
        return None


@cache
def _query(lang: str) -> Query | None:
    """The compiled tag query for a language, or None when there is no query file (or it does not compile)."""
    query_file = QUERIES_DIR / f"{_QUERY_ALIASES.get(lang, lang)}-tags.scm"
    language = _language(lang)
    if language is None or not query_file.is_file():
        return None
    from tree_sitter import Query, QueryError

    try:
        return Query(language, query_file.read_text(encoding="utf-8"))
    except QueryError:
        return None


def _text(node: Node) -> str:
    raw = (node.text or b"").decode("utf-8", errors="replace")
    first = raw.strip().splitlines()[0] if raw.strip() else raw
    return first[:_MAX_NAME_CHARS]


def _from_query(query: Query, root: Node) -> list[_Found]:
    """Run the tag query. When several patterns name the same identifier the widest node wins (decorators,
    `export`), then the pattern written first in the query file."""
    from tree_sitter import QueryCursor

    best: dict[int, _Found] = {}
    for pattern, captures in QueryCursor(query).matches(root):
        names = captures.get("name")
        kinds = [key for key in captures if key.startswith("definition.")]
        if not names or not kinds:
            continue
        node = captures[kinds[0]][0]
        parents = captures.get("parent")
        found = _Found(
            pattern=pattern,
            kind=kinds[0].removeprefix("definition."),
            name=_text(names[0]),
            start_byte=node.start_byte,
            end_byte=node.end_byte,
            start_line=node.start_point.row + 1,
            end_line=node.end_point.row + 1,
            parent=_text(parents[0]) if parents else None,
        )
        key = names[0].start_byte
        old = best.get(key)
        if old is None or _wider(found, old):
            best[key] = found
    return list(best.values())


def _wider(new: _Found, old: _Found) -> bool:
    new_span, old_span = new.end_byte - new.start_byte, old.end_byte - old.start_byte
    return new_span > old_span or (new_span == old_span and new.pattern < old.pattern)


def _from_walk(root: Node) -> list[_Found]:
    """Fallback for languages without a query file: `*_definition` / `*_declaration` nodes with a `name` field
    (or else an `*identifier` child)."""
    found: list[_Found] = []
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.type
        if kind.endswith(("_definition", "_declaration")):
            name = node.child_by_field_name("name") or next(
                (child for child in node.named_children if child.type.endswith("identifier")), None
            )
            if name is not None:
                found.append(
                    _Found(
                        pattern=0,
                        kind=kind.rsplit("_", 1)[0],
                        name=_text(name),
                        start_byte=node.start_byte,
                        end_byte=node.end_byte,
                        start_line=node.start_point.row + 1,
                        end_line=node.end_point.row + 1,
                        parent=None,
                    )
                )
        stack.extend(reversed(node.named_children))
    return found


def _nest(found: list[_Found]) -> list[Definition]:
    """Order by position; each definition's parent is the innermost one enclosing it; functions in classes are
    methods."""
    found.sort(key=lambda f: (f.start_byte, -f.end_byte))
    stack: list[_Found] = []
    result: list[Definition] = []
    for item in found:
        while stack and item.end_byte > stack[-1].end_byte:
            stack.pop()
        enclosing = stack[-1] if stack else None
        kind = item.kind
        if kind == "function" and enclosing is not None and enclosing.kind in _CONTAINERS:
            kind = "method"
        parent = item.parent or (enclosing.name if enclosing is not None else None)
        result.append(Definition(kind, item.name, item.start_line, item.end_line, parent))
        stack.append(item)
    return result
