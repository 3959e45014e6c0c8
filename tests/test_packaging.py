"""The wheel ships prompts/ and config/ inside the package, so an installed fastcode finds them from any folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from fastcode.core.resources import data_dir

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_prompts_config_and_queries(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*command, str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("fastcode-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fastcode/_data/config/default.toml" in names
    assert "fastcode/_data/prompts/system.md.j2" in names
    assert "fastcode/_data/evals/suites/bundled.jsonl" in names  # `fastcode bench --only fix-search` runs it
    assert "fastcode/_data/evals/suites/repos/textkit/textkit/wrap.py" in names
    assert "fastcode/tools/queries/python-tags.scm" in names
    shipped = {p.name for p in (ROOT / "prompts").iterdir()}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("fastcode/_data/prompts/")} == shipped


def test_installed_package_finds_its_data_from_another_folder(tmp_path: Path) -> None:
    code = "from fastcode.core.resources import data_dir; print(data_dir('prompts')); print(data_dir('config'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    prompts, config = (Path(line) for line in out.stdout.split())
    assert (prompts / "system.md.j2").is_file() and (config / "default.toml").is_file()
    assert data_dir("prompts").is_dir()
