"""Words of searches, filters, categories and brands, as cold start matches them."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["TOKEN", "words_of"]

#: A word (lower case letters and digits).
TOKEN = re.compile(r"[0-9a-z]+")


def words_of(names: Iterable[str]) -> list[set[str]]:
    """The set of words of each name."""
    return [set(TOKEN.findall(name.lower())) for name in names]
