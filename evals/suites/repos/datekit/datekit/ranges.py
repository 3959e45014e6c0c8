"""Sequences of dates."""

from __future__ import annotations

from datetime import date, timedelta


def date_range(start: date, end: date, step: int = 1) -> list[date]:
    """Every `step`-th day from `start` to `end`, both ends included (`end` only when a step lands on it)."""
    if step < 1:
        raise ValueError("step must be at least 1")
    days = (end - start).days
    return [start + timedelta(days=i) for i in range(0, days + 1, step)]


def iso_week(year: int, week: int) -> list[date]:
    """Monday to Sunday of ISO week `week` of `year`."""
    monday = date.fromisocalendar(year, week, 1)
    return [monday + timedelta(days=i) for i in range(7)]
