"""Money arithmetic: Decimals rounded half-up to cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
DEFAULT_TIERS = ((10, 5), (50, 10))
"""(minimum quantity, percent off) pairs."""


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def apply_discount(amount: Decimal, pct: int | Decimal) -> Decimal:
    if not 0 <= pct <= 100:
        raise ValueError(f"discount {pct}% is not between 0 and 100")
    return round_money(amount * (100 - Decimal(pct)) / 100)


def bulk_unit_price(unit_price: Decimal, quantity: int, tiers: tuple[tuple[int, int], ...] = DEFAULT_TIERS) -> Decimal:
    """The unit price after the best tier discount whose minimum quantity the order reaches."""
    pct = 0
    for minimum, tier_pct in tiers:
        if quantity >= minimum:
            pct = max(pct, tier_pct)
    return apply_discount(unit_price, pct)
