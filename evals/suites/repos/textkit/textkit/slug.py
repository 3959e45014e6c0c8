"""URL slugs."""

from __future__ import annotations

import re
import unicodedata

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str, sep: str = "-", max_length: int | None = None) -> str:
    """A URL slug: lower-case ASCII letters and digits, every other run of characters replaced by `sep`.

    Accents are dropped ("Crème" -> "creme") and the slug never starts or ends with `sep`. With `max_length`,
    the slug is cut to at most that many characters.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_ALNUM.sub(sep, ascii_text.lower()).strip(sep)
    if max_length is not None:
        slug = slug[:max_length].rstrip(sep)
    return slug
