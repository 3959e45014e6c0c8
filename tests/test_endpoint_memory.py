"""What runs remember of endpoints: per key, the newest last, capped, and a broken file is an empty memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastcode.core import endpoint_memory
from fastcode.core.endpoint_memory import endpoint_key, memory_file, recall, remember


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_a_value_is_recalled_by_its_key_and_the_oldest_keys_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint_memory, "MAX_REMEMBERED", 3)
    assert recall("rates", "a") is None
    for key in "abcd":
        remember("rates", key, ord(key))
    remember("rates", "b", 1)  # rewritten: now the newest
    assert [recall("rates", k) for k in "abcd"] == [None, 1, ord("c"), ord("d")]
    assert memory_file("rates").name == "rates.json"
    assert recall("other", "b") is None  # each memory its own file


def test_a_broken_or_unwritable_memory_is_an_empty_one(cache: Path) -> None:
    memory_file("rates").parent.mkdir(parents=True)
    memory_file("rates").write_text("{not json")
    assert recall("rates", "a") is None
    remember("rates", "a", 2)
    assert recall("rates", "a") == 2
    memory_file("rates").write_text("[1, 2]")
    assert recall("rates", "a") is None
    blocked = cache / "blocked"
    blocked.write_text("a file where the folder would be")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(blocked))
        remember("rates", "a", 3)  # nothing raised: forgotten
        assert recall("rates", "a") is None


def test_a_server_fastcode_started_is_remembered_by_its_model_alone() -> None:
    one = endpoint_key("http://127.0.0.1:41000/v1", "qwen", launched_here=True)
    assert one == endpoint_key("http://127.0.0.1:52000/v1", "qwen", launched_here=True)
    assert endpoint_key("http://127.0.0.1:41000/v1", "qwen") != endpoint_key("http://127.0.0.1:52000/v1", "qwen")
