"""Single-location bug injection: find mutation sites with the stdlib `ast`, apply them as byte-range text edits.

Only the bytes of the mutated node (or the removed statement's lines) change, so the rest of the file stays
byte-identical and the gold patch is a small unified diff. Operators: flip a comparison, shift a bound by one,
swap two call arguments, drop an `if` branch, change a default or module constant.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("comparison", "bound", "swap", "branch", "default")
_FLIPS = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}
_OP_PATTERN = {
    "<": r"(?<![<>=!])<(?![<>=])",
    "<=": r"<=",
    ">": r"(?<![<>=!-])>(?![<>=])",
    ">=": r">=",
    "==": r"==",
    "!=": r"!=",
    "in": r"(?<!not )\bin\b",
    "not in": r"\bnot\s+in\b",
    "is": r"\bis\b(?!\s+not\b)",
    "is not": r"\bis\s+not\b",
}
_NO_SWAP = frozenset(
    {
        "isinstance",
        "issubclass",
        "getattr",
        "setattr",
        "hasattr",
        "print",
        "super",
        "max",
        "min",
        "format",
        "open",
        "ValueError",
        "TypeError",
        "KeyError",
        "RuntimeError",
    }
)
_SEPARATORS = ("-", "_", ",", ";", ":", " ", "/", ".")
_BOUNDABLE = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)


@dataclass(frozen=True)
class Mutation:
    path: str
    """Repository-relative, with forward slashes."""
    kind: str
    start: int
    """Byte offsets of the replaced text in the file."""
    end: int
    new: str
    line: int
    scope: str
    """The enclosing function or class (`module` at top level): mutants are spread across scopes."""
    description: str

    @property
    def key(self) -> str:
        digest = hashlib.sha1(f"{self.path}:{self.start}:{self.end}:{self.new}".encode()).hexdigest()
        return digest[:8]

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.new.encode() + source[self.end :]


class _Sites(ast.NodeVisitor):
    """Collects mutations of one file."""

    def __init__(self, path: str, source: bytes) -> None:
        self.path, self.source = path, source
        self.line_starts = [0]
        for line in source.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.scope: list[str] = []
        self.found: list[Mutation] = []

    # positions

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset))

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end].decode()

    def add(self, kind: str, start: int, end: int, new: str, node: ast.AST, description: str) -> None:
        scope = ".".join(self.scope) or "module"
        self.found.append(Mutation(self.path, kind, start, end, new, node.lineno, scope, description))

    # scopes

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        for arg_default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self._constant(arg_default, "default argument")
        self._scoped(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for stmt in node.body:  # dataclass-style field defaults: `level: int = 5`
            if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                self._constant(stmt.value, "field default")
        self._scoped(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if not self.scope and names and all(n.isupper() for n in names):
            self._constant(node.value, "module constant")
        self.generic_visit(node)

    # operators

    def visit_Compare(self, node: ast.Compare) -> None:
        if len(node.ops) == 1 and type(node.ops[0]) in _FLIPS:
            old, new = _FLIPS[type(node.ops[0])]
            gap_start, gap_end = self.span(node.left)[1], self.span(node.comparators[0])[0]
            gap = self.source[gap_start:gap_end].decode()
            matches = list(re.finditer(_OP_PATTERN[old], gap))
            if len(matches) == 1:
                m = matches[0]
                self.add(
                    "comparison",
                    gap_start + len(gap[: m.start()].encode()),
                    gap_start + len(gap[: m.end()].encode()),
                    new,
                    node,
                    f"{old} -> {new}",
                )
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        right = node.right
        one = isinstance(right, ast.Constant) and type(right.value) is int and right.value == 1
        if one and isinstance(node.op, ast.Add | ast.Sub):
            start, end = self.span(node)
            sign = "+" if isinstance(node.op, ast.Add) else "-"
            self.add("bound", start, end, self.text(node.left), node, f"drop the {sign} 1")
        self.generic_visit(node)

    def visit_Slice(self, node: ast.Slice) -> None:
        for bound in (node.lower, node.upper):
            self._shift(bound, "slice bound")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name == "range":
            for arg in node.args[:2]:
                self._shift(arg, "range bound")
        positional = node.args
        if (
            len(positional) >= 2
            and name not in _NO_SWAP
            and not any(isinstance(a, ast.Starred) for a in positional[:2])
        ):
            first, second = positional[0], positional[1]
            a, b = self.text(first), self.text(second)
            if a != b:
                start, mid = self.span(first)
                gap_end, end = self.span(second)
                between = self.source[mid:gap_end].decode()
                self.add("swap", start, end, b + between + a, node, f"swap arguments of {name}()")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        self._drop(node)
        self.generic_visit(node)

    # helpers

    def _shift(self, node: ast.expr | None, what: str) -> None:
        if node is None:
            return
        start, end = self.span(node)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            self.add("bound", start, end, str(node.value + 1), node, f"{what} + 1")
        elif isinstance(node, _BOUNDABLE) or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub)):
            for sign in ("+", "-"):
                self.add("bound", start, end, f"{self.text(node)} {sign} 1", node, f"{what} {sign} 1")

    def _constant(self, node: ast.expr, what: str) -> None:
        if not isinstance(node, ast.Constant):
            return
        value, new = node.value, None
        if isinstance(value, bool):
            new = repr(not value)
        elif isinstance(value, int):
            new = str(value + 1)
        elif isinstance(value, float):
            new = repr(value * 2 if value else 1.0)
        elif isinstance(value, str) and len(value) <= 1 and self.text(node)[:1] in ("'", '"'):
            quote = self.text(node)[0]  # keep the file's quote style
            new = quote + (next(s for s in _SEPARATORS if s != value) if value else " ") + quote
        if new is not None:
            start, end = self.span(node)
            self.add("default", start, end, new, node, f"{what} {self.text(node)} -> {new}")

    def _drop(self, node: ast.If) -> None:
        """Remove an `if` (or `elif`) without an else branch: whole lines only."""
        if node.orelse:
            return
        first = self.source[self.line_starts[node.lineno - 1] : self.offset(node.lineno, node.col_offset)]
        end_line_rest = self.source[
            self.offset(node.end_lineno, node.end_col_offset) : self.line_starts[node.end_lineno]
        ]
        if first.strip() or (end_line_rest.strip() and not end_line_rest.strip().startswith(b"#")):
            return
        start, end = self.line_starts[node.lineno - 1], self.line_starts[node.end_lineno]
        keyword = "elif" if self.source[self.offset(node.lineno, node.col_offset) :].startswith(b"elif") else "if"
        self.add("branch", start, end, "", node, f"drop the `{keyword} {ast.unparse(node.test)[:40]}` branch")


def find_mutations(path: str, source: bytes) -> list[Mutation]:
    """Every mutation of one file whose result still parses and differs from the original."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    sites = _Sites(path, source)
    sites.visit(tree)
    original = ast.dump(tree)
    kept = []
    for mutation in sites.found:
        try:  # e.g. dropping the only statement of a block does not parse
            mutated = ast.parse(mutation.apply(source))
        except (SyntaxError, ValueError):
            continue
        if ast.dump(mutated) != original:
            kept.append(mutation)
    return kept


def is_test_file(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return (
        any(p in ("tests", "test", "testing") for p in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def source_files(root: Path) -> list[str]:
    """Python files that are not tests, setup scripts or hidden folders, sorted."""
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or "site-packages" in rel:
            continue
        if is_test_file(rel) or rel in ("setup.py", "noxfile.py", "conftest.py"):
            continue
        found.append(rel)
    return sorted(found)


def candidates(root: Path, seed: int) -> list[Mutation]:
    """All mutations of the repo in a seed-determined order that spreads them out: operator kinds take turns, and
    within a kind, functions take turns, so the first K kept mutants differ in kind and place where possible."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Mutation]] = {}
    for rel in source_files(root):
        for mutation in find_mutations(rel, (root / rel).read_bytes()):
            groups.setdefault((mutation.path, mutation.scope), []).append(mutation)
    order = sorted(groups)
    rng.shuffle(order)
    for key in order:
        rng.shuffle(groups[key])
    by_scope = _round_robin([groups[key] for key in order])
    kinds = sorted({m.kind for m in by_scope})
    rng.shuffle(kinds)
    return _round_robin([[m for m in by_scope if m.kind == kind] for kind in kinds])


def _round_robin(lists: list[list[Mutation]]) -> list[Mutation]:
    merged: list[Mutation] = []
    for i in range(max((len(items) for items in lists), default=0)):
        merged += [items[i] for items in lists if i < len(items)]
    return merged
