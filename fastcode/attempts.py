"""Edit-first attempts: the files one attempt wrote, with their content before it, so a reply whose edit the tests
reject can be taken back and another sample drawn from the same cached prompt."""

from __future__ import annotations

from pathlib import Path

from fastcode.tools.files import atomic_write


class Attempt:
    """Records each file's content before its first write in this attempt; `revert` puts them all back."""

    def __init__(self) -> None:
        self.originals: dict[Path, bytes | None] = {}

    def before_write(self, path: Path | None) -> None:
        if path is not None and path not in self.originals:
            self.originals[path] = path.read_bytes() if path.is_file() else None

    def revert(self, root: Path) -> list[str]:
        """Put every written file back as it was (delete the ones the attempt created); the paths, relative."""
        for path, data in self.originals.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data)
        changed = sorted(path.relative_to(root).as_posix() for path in self.originals)
        self.originals.clear()
        return changed
