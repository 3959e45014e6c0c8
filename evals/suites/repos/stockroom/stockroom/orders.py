"""Orders: taking stock and pricing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from stockroom.inventory import InsufficientStock, Inventory
from stockroom.models import normalize_sku
from stockroom.pricing import apply_discount


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int


def allocate(inventory: Inventory, lines: Iterable[OrderLine]) -> dict[str, int]:
    """Take the stock for every line of an order, or none at all.

    Raises InsufficientStock, leaving every stock level unchanged, when any SKU is short. Returns the quantity
    taken per SKU.
    """
    wanted: dict[str, int] = {}
    for line in lines:
        if line.quantity < 1:
            raise ValueError(f"{line.sku}: quantity must be positive")
        key = normalize_sku(line.sku)
        wanted[key] = wanted.get(key, 0) + line.quantity
    for sku, quantity in wanted.items():
        available = inventory.get(sku).quantity
        if quantity > available:
            raise InsufficientStock(f"{sku}: {quantity} wanted, {available} in stock")
    for sku, quantity in wanted.items():
        inventory.remove(sku, quantity)
    return wanted


def order_total(inventory: Inventory, lines: Iterable[OrderLine], discount_pct: int = 0) -> Decimal:
    """The price of an order at the current unit prices, less `discount_pct` percent."""
    subtotal = sum((inventory.get(line.sku).unit_price * line.quantity for line in lines), Decimal("0"))
    return apply_discount(subtotal, discount_pct)
