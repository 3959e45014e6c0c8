from decimal import Decimal

import pytest

from stockroom import Inventory, Item


def test_sku_spaces_are_stripped():
    assert Item("  AB-1 ", "Widget", Decimal("1.00")).sku == "AB-1"


def test_negative_quantity_is_rejected():
    with pytest.raises(ValueError):
        Item("AB-1", "Widget", Decimal("1.00"), quantity=-1)


def test_value_is_price_times_quantity():
    assert Item("AB-1", "Widget", Decimal("2.50"), quantity=4).value == Decimal("10.00")


def test_default_reorder_level_is_five():
    item = Item("AB-1", "Widget", Decimal("1.00"), quantity=3)
    assert item.reorder_level == 5
    assert Inventory([item]).low_stock() == [item]
