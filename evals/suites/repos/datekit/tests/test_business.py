from datetime import date

from datekit import add_business_days, business_days_between, is_business_day

MONDAY = date(2024, 5, 6)


def test_weekdays_are_business_days():
    assert is_business_day(MONDAY)
    assert not is_business_day(date(2024, 5, 5))  # Sunday


def test_add_business_days_within_a_week():
    assert add_business_days(MONDAY, 3) == date(2024, 5, 9)


def test_holidays_are_skipped():
    assert add_business_days(MONDAY, 1, holidays={date(2024, 5, 7)}) == date(2024, 5, 8)


def test_zero_days_is_the_same_day():
    assert add_business_days(MONDAY, 0) == MONDAY


def test_business_days_between_is_negative_backwards():
    assert business_days_between(date(2024, 5, 9), MONDAY) == -3


def test_weekends_are_skipped():
    friday = date(2024, 5, 3)
    assert add_business_days(friday, 1) == MONDAY
    assert add_business_days(MONDAY, -1) == friday
    assert business_days_between(friday, date(2024, 5, 13)) == 6
