"""Month arithmetic."""

from __future__ import annotations

from datetime import date

_THIRTY = frozenset({4, 6, 9, 11})


def is_leap(year: int) -> bool:
    """Gregorian leap years: every 4th year, except centuries not divisible by 400."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not between 1 and 12")
    if month == 2:
        return 29 if is_leap(year) else 28
    return 30 if month in _THIRTY else 31


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return day.replace(day=days_in_month(day.year, day.month))


def add_months(day: date, months: int) -> date:
    """The same day `months` later (earlier when negative). When that month is shorter, the result is its last
    day: Jan 31 + 1 month = Feb 28 (Feb 29 in leap years)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, days_in_month(year, month)))
