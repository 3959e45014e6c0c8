import pytest

from textkit import truncate


def test_short_text_is_unchanged():
    assert truncate("short", 10) == "short"


def test_text_of_exactly_the_limit_is_unchanged():
    assert truncate("hello", 5) == "hello"


def test_cut_text_ends_with_the_ellipsis():
    assert truncate("a fairly long sentence", 10).endswith("…")
    assert truncate("a fairly long sentence", 10, ellipsis="...").endswith("...")


def test_limit_shorter_than_ellipsis_is_an_error():
    with pytest.raises(ValueError):
        truncate("hello", 2, ellipsis="...")


def test_result_never_exceeds_limit():
    assert truncate("hello world", 8) == "hello w…"
    assert truncate("abcdefghij", 6, ellipsis="...") == "abc..."
    for limit in range(3, 12):
        assert len(truncate("the quick brown fox", limit, ellipsis="...")) <= limit
