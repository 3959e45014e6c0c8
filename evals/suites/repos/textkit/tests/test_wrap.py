import pytest

from textkit import fill, indent, wrap


def test_wraps_between_words():
    assert wrap("the quick brown fox", width=10) == ["the quick", "brown fox"]


def test_whitespace_runs_count_as_one_space():
    assert wrap("a   b\n\tc", width=80) == ["a b c"]


def test_long_word_gets_its_own_line():
    assert wrap("a supercalifragilistic b", width=6) == ["a", "supercalifragilistic", "b"]


def test_empty_text_has_no_lines():
    assert wrap("   ", width=5) == []


def test_width_must_be_positive():
    with pytest.raises(ValueError):
        wrap("abc", width=0)


def test_fill_joins_lines():
    assert fill("one two three four", width=9) == "one two\nthree\nfour"


def test_indent_skips_blank_lines():
    assert indent("a\n\nb", "> ") == "> a\n\n> b"


def test_line_of_exactly_width_is_kept():
    assert wrap("aaa bbb ccc", width=7) == ["aaa bbb", "ccc"]
    assert fill("12345 789", width=9) == "12345 789"
