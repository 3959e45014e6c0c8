"""Business days: Monday to Friday, minus holidays."""

from __future__ import annotations

from collections.abc import Container
from datetime import date, timedelta


def is_business_day(day: date, holidays: Container[date] = frozenset()) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(day: date, count: int, holidays: Container[date] = frozenset()) -> date:
    """The date `count` business days after `day` (before it when negative); weekends and holidays are skipped."""
    step = 1 if count >= 0 else -1
    remaining = abs(count)
    current = day
    while remaining:
        current += timedelta(days=step)
        if is_business_day(current, holidays):
            remaining -= 1
    return current


def business_days_between(start: date, end: date, holidays: Container[date] = frozenset()) -> int:
    """Business days from `start` (included) to `end` (excluded); negative when `end` is before `start`."""
    if end < start:
        return -business_days_between(end, start, holidays)
    return sum(is_business_day(start + timedelta(days=i), holidays) for i in range((end - start).days))
