"""The stock of a warehouse, by SKU."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from stockroom.models import Item, normalize_sku


class UnknownSku(KeyError):
    pass


class InsufficientStock(Exception):
    pass


class Inventory:
    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._items: dict[str, Item] = {}
        for item in items:
            self.add(item)

    def add(self, item: Item) -> None:
        if item.sku in self._items:
            raise ValueError(f"duplicate SKU {item.sku}")
        self._items[item.sku] = item

    def get(self, sku: str) -> Item:
        key = normalize_sku(sku)
        try:
            return self._items[key]
        except KeyError:
            raise UnknownSku(sku) from None

    def __contains__(self, sku: str) -> bool:
        return normalize_sku(sku) in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        """Items in SKU order."""
        return iter(sorted(self._items.values(), key=lambda item: item.sku))

    def restock(self, sku: str, quantity: int) -> None:
        if quantity < 1:
            raise ValueError("restock quantity must be positive")
        self.get(sku).quantity += quantity

    def remove(self, sku: str, quantity: int) -> None:
        item = self.get(sku)
        if quantity > item.quantity:
            raise InsufficientStock(f"{item.sku}: {quantity} wanted, {item.quantity} in stock")
        item.quantity -= quantity

    def low_stock(self) -> list[Item]:
        """Items at or below their reorder level, lowest quantity first."""
        low = [item for item in self if item.quantity <= item.reorder_level]
        return sorted(low, key=lambda item: (item.quantity, item.sku))

    def total_value(self) -> Decimal:
        return sum((item.value for item in self), Decimal("0"))

    def page(self, number: int, size: int = 10) -> list[Item]:
        """Page `number` (the first page is 1) of the items in SKU order."""
        if number < 1 or size < 1:
            raise ValueError("page number and size start at 1")
        items = list(self)
        start = (number - 1) * size
        return items[start : start + size]
