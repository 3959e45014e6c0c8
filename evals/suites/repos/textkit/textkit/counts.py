"""Word counts."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z0-9']+")


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, punctuation dropped (apostrophes kept)."""
    return [w.lower() for w in _WORD.findall(text)]


def word_count(text: str) -> int:
    return len(words(text))


def top_words(text: str, n: int = 3, stopwords: frozenset[str] = frozenset()) -> list[tuple[str, int]]:
    """The `n` most frequent words and their counts, most frequent first; words with equal counts are listed in
    alphabetical order, so the result never depends on where words appear."""
    counts = Counter(w for w in words(text) if w not in stopwords)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:n]
