"""textkit: small text utilities (wrapping, slugs, truncation, word counts, title case)."""

from textkit.case import title_case
from textkit.counts import top_words, word_count, words
from textkit.slug import slugify
from textkit.truncate import truncate
from textkit.wrap import fill, indent, wrap

__all__ = ["fill", "indent", "slugify", "title_case", "top_words", "truncate", "word_count", "words", "wrap"]
