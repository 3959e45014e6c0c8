import pytest

from datekit import format_duration, parse_duration


def test_parse_units():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2d 4h") == 187200
    assert parse_duration("1w") == 604800


def test_parse_is_case_insensitive():
    assert parse_duration(" 10M ") == 600


def test_parse_errors():
    for bad in ("", "abc", "5y"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_format():
    assert format_duration(5400) == "1h 30m"
    assert format_duration(0) == "0s"
    assert format_duration(-90) == "-1m 30s"


def test_explicit_default_unit():
    assert parse_duration("5", default_unit="m") == 300


def test_bare_numbers_are_seconds():
    assert parse_duration("90") == 90
    assert parse_duration("1m 30") == 90
