from decimal import Decimal

from stockroom import dump_items, load_items

CSV = """sku,name,unit_price,quantity,reorder_level
AB-1, Widget ,2.50,12,3
CD-2,Gadget,10.00,0,
"""


def test_load_items():
    first, second = load_items(CSV)
    assert (first.sku, first.name, first.unit_price, first.quantity, first.reorder_level) == (
        "AB-1",
        "Widget",
        Decimal("2.50"),
        12,
        3,
    )
    assert second.quantity == 0


def test_round_trip():
    items = load_items(CSV)
    assert load_items(dump_items(items)) == items
