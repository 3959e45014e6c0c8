"""CSV import and export: header sku,name,unit_price,quantity[,reorder_level]."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal

from stockroom.models import Item

FIELDS = ["sku", "name", "unit_price", "quantity", "reorder_level"]


def load_items(text: str) -> list[Item]:
    """Items from CSV text with a header row; a missing or empty reorder_level keeps the default."""
    items = []
    for row in csv.DictReader(io.StringIO(text)):
        extra = {"reorder_level": int(row["reorder_level"])} if (row.get("reorder_level") or "").strip() else {}
        items.append(
            Item(
                sku=row["sku"],
                name=row["name"].strip(),
                unit_price=Decimal(row["unit_price"].strip()),
                quantity=int(row["quantity"]),
                **extra,
            )
        )
    return items


def dump_items(items: Iterable[Item]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for item in items:
        writer.writerow([item.sku, item.name, item.unit_price, item.quantity, item.reorder_level])
    return out.getvalue()
