from decimal import Decimal

import pytest

from stockroom import InsufficientStock, Inventory, Item, OrderLine, allocate, order_total


def inventory():
    return Inventory(
        [
            Item("A", "apple", Decimal("0.50"), quantity=5),
            Item("B", "bread", Decimal("2.20"), quantity=2),
        ]
    )


def test_allocate_takes_the_stock():
    inv = inventory()
    assert allocate(inv, [OrderLine("A", 3), OrderLine("B", 1)]) == {"A": 3, "B": 1}
    assert inv.get("A").quantity == 2 and inv.get("B").quantity == 1


def test_allocate_is_all_or_nothing():
    inv = inventory()
    with pytest.raises(InsufficientStock):
        allocate(inv, [OrderLine("A", 3), OrderLine("B", 3)])
    assert inv.get("A").quantity == 5 and inv.get("B").quantity == 2


def test_allocate_rejects_zero_quantities():
    with pytest.raises(ValueError):
        allocate(inventory(), [OrderLine("A", 0)])


def test_order_total_with_discount():
    lines = [OrderLine("A", 3), OrderLine("B", 2)]
    assert order_total(inventory(), lines) == Decimal("5.90")
    assert order_total(inventory(), lines, discount_pct=10) == Decimal("5.31")


def test_same_sku_on_two_lines_is_all_or_nothing():
    inv = inventory()
    with pytest.raises(InsufficientStock):
        allocate(inv, [OrderLine("A", 3), OrderLine("A", 3)])
    assert inv.get("A").quantity == 5
    assert allocate(inv, [OrderLine("A", 2), OrderLine("A", 2)]) == {"A": 4}
    assert inv.get("A").quantity == 1
