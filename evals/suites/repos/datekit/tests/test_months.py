from datetime import date

import pytest

from datekit import add_months, days_in_month, is_leap, month_end


def test_leap_years():
    assert is_leap(2024) and not is_leap(2023) and not is_leap(1900)


def test_days_in_month():
    assert [days_in_month(2023, m) for m in (1, 2, 4, 12)] == [31, 28, 30, 31]


def test_bad_month():
    with pytest.raises(ValueError):
        days_in_month(2024, 13)


def test_month_end():
    assert month_end(date(2024, 2, 10)) == date(2024, 2, 29)
    assert month_end(date(2023, 11, 30)) == date(2023, 11, 30)


def test_add_months_keeps_the_day():
    assert add_months(date(2024, 1, 15), 1) == date(2024, 2, 15)
    assert add_months(date(2024, 11, 5), 3) == date(2025, 2, 5)


def test_add_negative_months():
    assert add_months(date(2024, 3, 10), -3) == date(2023, 12, 10)


def test_century_leap_years():
    assert is_leap(2000) and is_leap(2400)
    assert days_in_month(2000, 2) == 29
    assert month_end(date(2000, 2, 1)) == date(2000, 2, 29)


def test_add_months_clamps_to_the_end_of_shorter_months():
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 5, 31), -1) == date(2024, 4, 30)
