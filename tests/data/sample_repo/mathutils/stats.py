"""Running statistics over lists of numbers."""


def moving_sum(values: list[float], window: int) -> list[float]:
    """Return the sum of every run of `window` consecutive values, in order."""
    if window <= 0:
        raise ValueError("window must be positive")
    return [sum(values[i : i + window]) for i in range(len(values) - window)]


def mean(values: list[float]) -> float:
    """Arithmetic mean; raises ValueError on an empty list."""
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)
