"""The hashes of the stored events' keys, so a small load can tell new events without a scan.

DuckDB has no index on ``(source, event_id)`` (an ART index would hold every key in memory and
slow bulk loads down), so replacing events by key scans the whole table: fine for a batch of
thousands, ruinous for the server's loads of a few events. A :class:`KeyFilter` holds a 64-bit
hash of every stored key (8 bytes per event); when none of a batch's hashes is in it, the batch
is new and can be appended. A hash that is there (a re-sent event, or rarely a collision) sends
the batch down the exact path, so the filter can never let a duplicate in.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["KeyFilter"]

#: Hashes added since the last merge into the sorted array, before they are merged.
_MERGE_AFTER = 1 << 16

Hashes = npt.NDArray[np.uint64]


class KeyFilter:
    """A set of key hashes: a sorted array, and the hashes added since it was sorted.

    Args:
        hashes: the hashes of the keys stored so far (any order, duplicates allowed).
    """

    def __init__(self, hashes: Hashes) -> None:
        self._sorted: Hashes = np.unique(hashes.astype(np.uint64, copy=False))
        self._added: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added)

    def any_of(self, hashes: Hashes) -> bool:
        """Whether any of ``hashes`` may be a stored key (False means surely none is)."""
        if not len(hashes):
            return False
        if self._added and not self._added.isdisjoint(hashes.tolist()):
            return True
        if not len(self._sorted):
            return False
        at = np.searchsorted(self._sorted, hashes)
        at[at == len(self._sorted)] = 0
        return bool(np.any(self._sorted[at] == hashes))

    def add(self, hashes: Hashes) -> None:
        """Remember the hashes of keys just stored."""
        self._added.update(hashes.tolist())
        if len(self._added) >= _MERGE_AFTER:
            merged = np.fromiter(self._added, dtype=np.uint64, count=len(self._added))
            self._sorted = np.union1d(self._sorted, merged)
            self._added.clear()
