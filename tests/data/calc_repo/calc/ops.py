"""Small arithmetic helpers."""


def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    return a - b


def double(x: int) -> int:
    """Return twice x."""
    return 2 * x
