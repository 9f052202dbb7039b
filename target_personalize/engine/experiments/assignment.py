"""Deterministic, sticky assignment of visitors to variants, as GrowthBook's SDKs compute it.

The bucket of a visitor is GrowthBook's hash version 2::

    fnv = FNV-1a, 32 bits, over the string's UTF-16 code units (JavaScript's charCodeAt)
    bucket = (fnv(str(fnv(seed + visitor_id))) % 10000) / 10000

and the variant is the one whose range holds the bucket; ranges come from the cumulative weights
times the coverage (``[0, 0.5 * coverage)``, ``[0.5, 0.5 + 0.5 * coverage)`` for 50/50). So a
browser running a GrowthBook SDK with ``hashVersion: 2``, the experiment's seed, weights and
coverage puts every visitor in the same variant as the server. Checked against GrowthBook's
published SDK test cases (``tests/fixtures/growthbook/cases.json``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from target_personalize.engine.experiments.definition import Experiment, Variant

__all__ = ["assign", "bucket", "bucket_ranges", "choose_variation", "fnv1a32"]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32(text: str) -> int:
    """FNV-1a (32 bits) of ``text`` taken as UTF-16 code units, as GrowthBook's JavaScript SDK."""
    units = text.encode("utf-16-le")
    value = _FNV_OFFSET
    for unit in memoryview(units).cast("H"):
        value = ((value ^ unit) * _FNV_PRIME) & _MASK
    return value


def bucket(seed: str, visitor_id: str) -> float:
    """GrowthBook's hash version 2 of ``visitor_id`` under ``seed``: a number in [0, 1)."""
    return (fnv1a32(str(fnv1a32(seed + visitor_id))) % 10000) / 10000


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """Each variant's ``[start, end)`` of the bucket: cumulative weights, scaled by coverage."""
    starts = itertools.accumulate(weights, initial=0.0)
    return [(start, start + coverage * w) for start, w in zip(starts, weights, strict=False)]


def choose_variation(value: float, ranges: Sequence[tuple[float, float]]) -> int | None:
    """The index of the range holding ``value``, or ``None`` outside every range."""
    for index, (start, end) in enumerate(ranges):
        if start <= value < end:
            return index
    return None


def assign(experiment: Experiment, visitor_id: str) -> Variant | None:
    """The visitor's variant, or ``None`` when the visitor is outside the experiment's coverage.

    The same visitor always gets the same variant while the experiment's seed, weights and
    coverage stay the same. An empty ``visitor_id`` is never assigned (as in GrowthBook).
    """
    if not visitor_id:
        return None
    ranges = bucket_ranges(experiment.weights, experiment.coverage)
    index = choose_variation(bucket(experiment.seed, visitor_id), ranges)
    return None if index is None else experiment.variants[index]
