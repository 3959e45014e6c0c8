from decimal import Decimal

import pytest

from stockroom import apply_discount, bulk_unit_price, round_money


def test_round_money_half_up():
    assert round_money(Decimal("1.005")) == Decimal("1.01")
    assert round_money(Decimal("1.004")) == Decimal("1.00")


def test_apply_discount():
    assert apply_discount(Decimal("19.99"), 15) == Decimal("16.99")


def test_discount_out_of_range():
    with pytest.raises(ValueError):
        apply_discount(Decimal("1"), 101)


def test_bulk_tiers():
    assert bulk_unit_price(Decimal("2.00"), 9) == Decimal("2.00")
    assert bulk_unit_price(Decimal("2.00"), 10) == Decimal("1.90")
    assert bulk_unit_price(Decimal("2.00"), 75) == Decimal("1.80")
