from decimal import Decimal

import pytest

from stockroom import InsufficientStock, Inventory, Item, UnknownSku


def item(sku, quantity=10, level=5, price="1.00"):
    return Item(sku, f"item {sku}", Decimal(price), quantity=quantity, reorder_level=level)


def test_add_and_get():
    inv = Inventory([item("AB-1")])
    assert inv.get("AB-1").name == "item AB-1"
    assert len(inv) == 1


def test_duplicate_sku_is_rejected():
    inv = Inventory([item("AB-1")])
    with pytest.raises(ValueError):
        inv.add(item("AB-1"))


def test_unknown_sku():
    with pytest.raises(UnknownSku):
        Inventory().get("NOPE")


def test_remove_and_restock():
    inv = Inventory([item("AB-1", quantity=10)])
    inv.remove("AB-1", 4)
    inv.restock("AB-1", 1)
    assert inv.get("AB-1").quantity == 7


def test_removing_more_than_the_stock_changes_nothing():
    inv = Inventory([item("AB-1", quantity=3)])
    with pytest.raises(InsufficientStock):
        inv.remove("AB-1", 4)
    assert inv.get("AB-1").quantity == 3


def test_low_stock_lists_items_below_their_level():
    inv = Inventory([item("A", quantity=1), item("B", quantity=10), item("C", quantity=0, level=2)])
    assert [i.sku for i in inv.low_stock()] == ["C", "A"]


def test_total_value():
    inv = Inventory([item("A", quantity=2, price="1.25"), item("B", quantity=1, price="3.00")])
    assert inv.total_value() == Decimal("5.50")


def test_page_zero_is_an_error():
    with pytest.raises(ValueError):
        Inventory([item("A")]).page(0)


def test_page_past_the_end_is_empty():
    assert Inventory([item("A"), item("B"), item("C")]).page(10, size=5) == []


def test_low_stock_includes_items_at_their_level():
    inv = Inventory([item("A", quantity=5, level=5), item("B", quantity=6, level=5)])
    assert [i.sku for i in inv.low_stock()] == ["A"]


def test_first_page_starts_at_the_first_item():
    inv = Inventory([item(sku) for sku in "EDCBA"])
    assert [i.sku for i in inv.page(1, size=2)] == ["A", "B"]
    assert [i.sku for i in inv.page(3, size=2)] == ["E"]


def test_lookups_ignore_case_and_spaces():
    inv = Inventory([item(" ab-1 ")])
    assert inv.get("AB-1").sku == "AB-1"
    assert inv.get(" ab-1") is inv.get("AB-1")
    assert "Ab-1" in inv
