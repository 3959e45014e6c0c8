"""Eval instances: one JSON object per line, with SWE-bench's field names where they fit.

A line that does not parse or validate does not stop a run: `load_suite` turns it into a `BrokenLine`, which the
harness reports as an error for that instance while the others go on.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"


class Instance(BaseModel):
    """One task: a repository state, a problem statement and the tests that decide whether it is solved."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    instance_id: str = Field(pattern=ID_PATTERN)
    """Unique in its suite; also names its folder in the output and its scripted trajectory (`<id>.json`)."""
    problem_statement: str
    """What the agent is told: the task, as a user would report it."""
    repo_path: str
    """A local git repository or a plain folder; a relative path is resolved against the suite file's folder."""
    base_commit: str | None = None
    """The revision the agent starts from (a commit, branch or tag); HEAD when absent. Plain folders have none."""
    FAIL_TO_PASS: list[str] = []
    """Test ids (pytest node ids) that must pass after the fix and fail before it."""
    PASS_TO_PASS: list[str] = []
    """Test ids that must keep passing."""
    test_cmd: str = ""
    """Shell command that runs the tests in the repository root, e.g. `python -m pytest -q`."""
    patch: str = ""
    """The gold fix, a unified diff `git apply` accepts (applied by `--gold`)."""
    test_patch: str = ""
    """A diff applied after the agent and before scoring (hidden tests); files it touches are reset first."""
    setup: list[str] = []
    """Shell commands run in the copy before the agent starts (a failure is an error for the instance)."""
    base_has_fix: bool = False
    """True when `repo_path` at `base_commit` holds the fixed code: the start state is made by reverse-applying
    `test_patch` and `patch`. Lets one fixed tree carry many bugs (the bundled suite, `make-tasks`)."""

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", "setup", mode="before")
    @classmethod
    def _json_or_list(cls, value: Any) -> Any:
        """SWE-bench datasets store the test lists as JSON text; a single setup command may be a string."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [text] if text else []
        return value

    @field_validator("repo_path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base")
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        return str(path.resolve()) if base is not None else value


@dataclass(frozen=True)
class BrokenLine:
    """A suite line that is not a valid instance: reported as an error under `instance_id`."""

    instance_id: str
    error: str
    line: int


def parse_instance(data: Any, *, base: Path | None = None) -> Instance:
    return Instance.model_validate(data, context={"base": base} if base is not None else None)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "instance"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def load_suite(path: Path) -> list[Instance | BrokenLine]:
    """Every non-blank line of a suite file, in order; OSError when the file cannot be read."""
    base = path.resolve().parent
    entries: list[Instance | BrokenLine] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fallback = f"line-{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            entries.append(BrokenLine(fallback, f"line {number}: not valid JSON: {exc.msg}", number))
            continue
        raw_id = data.get("instance_id") if isinstance(data, dict) else None
        usable = isinstance(raw_id, str) and re.match(ID_PATTERN, raw_id) and raw_id not in seen
        name = raw_id if usable else fallback
        try:
            instance = parse_instance(data, base=base)
        except (ValidationError, ValueError) as exc:
            detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
            entries.append(BrokenLine(name, f"line {number}: {detail}", number))
            continue
        if instance.instance_id in seen:
            entries.append(
                BrokenLine(fallback, f"line {number}: duplicate instance_id {instance.instance_id!r}", number)
            )
            continue
        seen.add(instance.instance_id)
        entries.append(instance)
    return entries


def dump_instance(instance: Instance, *, relative_to: Path | None = None) -> str:
    """One JSONL line; `repo_path` is written relative to `relative_to` (the suite's folder) when given."""
    data = instance.model_dump(exclude_defaults=False)
    if relative_to is not None and Path(instance.repo_path).is_absolute():
        data["repo_path"] = os.path.relpath(instance.repo_path, relative_to)
    return json.dumps(data, ensure_ascii=False)
