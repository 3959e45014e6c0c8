from datetime import date

import pytest

from datekit import date_range, iso_week


def test_weekly_steps():
    days = date_range(date(2024, 1, 1), date(2024, 1, 21), step=7)
    assert days == [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)]


def test_end_before_start_is_empty():
    assert date_range(date(2024, 1, 2), date(2024, 1, 1)) == []


def test_step_must_be_positive():
    with pytest.raises(ValueError):
        date_range(date(2024, 1, 1), date(2024, 1, 5), step=0)


def test_iso_week():
    week = iso_week(2024, 1)
    assert week[0] == date(2024, 1, 1) and week[-1] == date(2024, 1, 7)


def test_both_ends_are_included():
    assert date_range(date(2024, 1, 1), date(2024, 1, 3)) == [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)]
    assert date_range(date(2024, 2, 28), date(2024, 2, 28)) == [date(2024, 2, 28)]
