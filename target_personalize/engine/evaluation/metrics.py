"""User-level ranking metrics: precision and NDCG at k."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["ndcg_at_k", "precision_at_k"]


def precision_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int = 20) -> float:
    """Share of the first ``k`` recommendations that are relevant."""
    wanted = set(relevant)
    if k <= 0:
        return 0.0
    return sum(1 for item in list(recommended)[:k] if item in wanted) / k


def ndcg_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int = 20) -> float:
    """Normalised discounted cumulative gain of the first ``k`` recommendations (binary)."""
    wanted = set(relevant)
    if not wanted or k <= 0:
        return 0.0
    gain = sum(
        1.0 / math.log2(rank + 2)
        for rank, item in enumerate(list(recommended)[:k])
        if item in wanted
    )
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(wanted), k)))
    return gain / ideal
