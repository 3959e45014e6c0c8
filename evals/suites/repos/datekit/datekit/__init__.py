"""datekit: months, business days, date ranges and durations."""

from datekit.business import add_business_days, business_days_between, is_business_day
from datekit.durations import format_duration, parse_duration
from datekit.months import add_months, days_in_month, is_leap, month_end
from datekit.ranges import date_range, iso_week

__all__ = [
    "add_business_days",
    "add_months",
    "business_days_between",
    "date_range",
    "days_in_month",
    "format_duration",
    "is_business_day",
    "is_leap",
    "iso_week",
    "month_end",
    "parse_duration",
]
