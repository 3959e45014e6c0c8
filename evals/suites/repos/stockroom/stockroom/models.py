"""The item record."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


def normalize_sku(sku: str) -> str:
    """SKUs are case-insensitive and ignore surrounding spaces: " ab-12 " -> "AB-12"."""
    return sku.strip().upper()


@dataclass
class Item:
    sku: str
    name: str
    unit_price: Decimal
    quantity: int = 0
    reorder_level: int = 5
    """Stock at or below this level needs reordering."""

    def __post_init__(self) -> None:
        self.sku = normalize_sku(self.sku)
        if not self.sku:
            raise ValueError("an item needs a SKU")
        if self.quantity < 0:
            raise ValueError(f"{self.sku}: negative quantity {self.quantity}")

    @property
    def value(self) -> Decimal:
        return self.unit_price * self.quantity
