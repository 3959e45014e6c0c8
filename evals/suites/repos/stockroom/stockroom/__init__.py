"""stockroom: items, stock levels, orders, pricing and CSV import/export."""

from stockroom.csvio import dump_items, load_items
from stockroom.inventory import InsufficientStock, Inventory, UnknownSku
from stockroom.models import Item, normalize_sku
from stockroom.orders import OrderLine, allocate, order_total
from stockroom.pricing import apply_discount, bulk_unit_price, round_money

__all__ = [
    "InsufficientStock",
    "Inventory",
    "Item",
    "OrderLine",
    "UnknownSku",
    "allocate",
    "apply_discount",
    "bulk_unit_price",
    "dump_items",
    "load_items",
    "normalize_sku",
    "order_total",
    "round_money",
]
