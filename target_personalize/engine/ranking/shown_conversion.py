"""P(buy | shown): the key conversion per recorded impression, corrected for position bias.

Served lists are kept in the store (``impressions``, ``impression_items``). An impression of
item *i* at position *k* **converts** when a key conversion of *i* carries the list's ``rec_id``
and happens before the list's attribution window (24 h, the readout's) is over. View-through
conversions (no ``rec_id``) do not count: they measure what the visitor would have bought anyway.

One SQL query (the same on DuckDB and PostgreSQL) counts impressions and conversions per
(item, position); the small table left is fitted here by an examination model::

    P(convert | i shown at k) = theta_k * p_i,    theta_1 = 1

so ``p_i`` is P(buy | shown at the top). ``theta`` and ``p`` are fitted in turn. ``p_i`` is
shrunk (empirical Bayes, Beta prior) towards the item's smoothed conversion rate scaled to the
impressions' level, with a prior strength that maximizes the beta-binomial likelihood of the
counts; an item never shown gets the prior mean. ``theta_k`` is shrunk towards 1 by one pseudo
conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import betaln

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.store.views import event_items_sql

if TYPE_CHECKING:
    from target_personalize.engine.ranking.contract import RankerBase
    from target_personalize.engine.ranking.query import Query
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "MIN_SHOWN_CONVERSIONS",
    "ShownConversion",
    "ShownCounts",
    "ShownFit",
    "fit_shown",
    "read_shown",
    "shown_conversion",
]

#: Conversions attributed to impressions needed before P(buy | shown) replaces item rates.
MIN_SHOWN_CONVERSIONS = 30
#: Positions beyond this one are pooled with it.
MAX_POSITION = 50
#: The readout's attribution window (``experiments.sql.DEFAULT_ATTRIBUTION_WINDOW``).
ATTRIBUTION_WINDOW = timedelta(hours=24)
#: Prior strengths (pseudo examined impressions) the empirical Bayes step chooses from.
_STRENGTHS = np.geomspace(1.0, 1e6, 31)
#: The prior's strength is chosen again every this many rounds.
_STRENGTH_EVERY = 10
_ITERATIONS = 100

_SQL = """WITH params AS (
    SELECT CAST(%s AS VARCHAR) AS conversion, CAST(%s AS BIGINT) AS window_s,
           CAST(%s AS BIGINT) AS last_position),
key_conversions AS (
    SELECT e.source, e.event_id, e.rec_id, e.event_ts FROM events e, params p
    WHERE e.event_type = p.conversion AND NOT e.is_aggregate AND e.rec_id IS NOT NULL),
bought AS (
    SELECT DISTINCT s.rec_id, ei.item_id
    FROM key_conversions k
    JOIN impressions s ON s.rec_id = k.rec_id
    JOIN ({event_items}) ei ON ei.source = k.source AND ei.event_id = k.event_id
    CROSS JOIN params p
    WHERE k.event_ts < s.served_at + INTERVAL '1 second' * p.window_s)
SELECT ii.item_id, ii.position,
       CAST(count(*) AS BIGINT) AS shown, CAST(count(b.item_id) AS BIGINT) AS bought
FROM (SELECT i.rec_id, i.item_id, CAST(least(i.position, p.last_position) AS BIGINT) AS position
      FROM impression_items i, params p) ii
LEFT JOIN bought b ON b.rec_id = ii.rec_id AND b.item_id = ii.item_id
GROUP BY ii.item_id, ii.position
ORDER BY ii.item_id, ii.position"""


@dataclass(frozen=True)
class ShownCounts:
    """Impressions and attributed conversions per (item, position), one row each."""

    item_ids: tuple[str, ...]
    position: IntArray
    shown: FloatArray
    bought: FloatArray


def read_shown(
    store: EventStore, conversion: str, window: timedelta = ATTRIBUTION_WINDOW
) -> ShownCounts:
    """Count impressions and their conversions per (item, position) in the store."""
    event_items = event_items_sql(store.dialect, "event_type = (SELECT conversion FROM params)")
    rows = store.query(
        _SQL.format(event_items=event_items),
        [conversion, int(window.total_seconds()), MAX_POSITION],
    )
    return ShownCounts(
        tuple(str(r[0]) for r in rows),
        np.asarray([int(r[1]) for r in rows], dtype=np.int64),
        np.asarray([float(r[2]) for r in rows], dtype=np.float64),
        np.asarray([float(r[3]) for r in rows], dtype=np.float64),
    )


@dataclass(frozen=True)
class ShownFit:
    """The fitted examination model.

    Attributes:
        p: P(buy | shown at the top) per item (the prior mean for items never shown).
        prior: the prior mean per item (the item's rate scaled to the impressions' level).
        examination: ``theta_k``, P(examined at position k) relative to position 1.
        strength: the prior's strength, in examined impressions.
    """

    p: FloatArray
    prior: FloatArray
    examination: FloatArray
    strength: float


def _log_marginal(bought: FloatArray, examined: FloatArray, mean: FloatArray) -> FloatArray:
    """Beta-binomial log likelihood of the counts for each strength in ``_STRENGTHS``."""
    a = _STRENGTHS[:, None] * mean[None, :]
    b = _STRENGTHS[:, None] * (1.0 - mean[None, :])
    fail = np.maximum(examined - bought, 0.0)[None, :]
    total: FloatArray = (betaln(a + bought[None, :], b + fail) - betaln(a, b)).sum(axis=1)
    return total


def fit_shown(
    item: IntArray, position: IntArray, shown: FloatArray, bought: FloatArray, rate: FloatArray
) -> ShownFit:
    """Fit ``P(convert | i at k) = theta_k * p_i`` with ``p`` shrunk towards ``rate``'s shape.

    Args:
        item: the item index (into ``rate``) of each (item, position) row.
        position: its 1-based position.
        shown: impressions of the row.
        bought: of which converted.
        rate: each item's smoothed conversion rate (the prior's shape; positive).
    """
    n = rate.size
    slots = int(position.max(initial=1))
    pos = position - 1
    converted = np.bincount(item, weights=bought, minlength=n).astype(np.float64)
    at_position = np.bincount(pos, weights=bought, minlength=slots)
    theta = np.ones(slots)
    shape = np.maximum(rate, 1e-9)
    strength = float(_STRENGTHS[0])
    p = prior = shape
    for round_ in range(_ITERATIONS):
        examined = np.maximum(np.bincount(item, weights=shown * theta[pos], minlength=n), converted)
        scale = converted.sum() / max(float((examined * shape).sum()), 1e-12)
        prior = np.minimum(scale * shape, 0.999)
        if round_ % _STRENGTH_EVERY == 0:
            reached = examined > 0
            likelihood = _log_marginal(converted[reached], examined[reached], prior[reached])
            strength = float(_STRENGTHS[np.argmax(likelihood)])
        p = (converted + strength * prior) / (examined + strength)
        expected = np.bincount(pos, weights=shown * p[item], minlength=slots)
        fresh = (at_position + 1.0) / (expected + 1.0)
        fresh /= fresh[0]
        done = np.allclose(fresh, theta, rtol=1e-6, atol=1e-9)
        theta = fresh
        if done:
            break
    return ShownFit(p=p, prior=prior, examination=theta, strength=strength)


class ShownConversion:
    """The dials' :class:`~.objectives.ConversionModel` learnt from recorded impressions.

    Args:
        probability: P(buy | shown at the top) of every item of the ranker's vocabulary.
        fallback: P of items added later (the mean prior).
        summary: what it was learnt from (shown in ``personalize fit`` and model info).
    """

    def __init__(self, probability: FloatArray, fallback: float, summary: dict[str, Any]) -> None:
        self.p = probability
        self.fallback = fallback
        self.summary = summary

    def probability(self, items: IntArray, query: Query) -> FloatArray:
        """P(buy | shown) of ``items`` (the same for every session)."""
        del query
        known = items < self.p.size
        return np.where(known, self.p[np.where(known, items, 0)], self.fallback)


def shown_conversion(
    ranker: RankerBase, store: EventStore, window: timedelta = ATTRIBUTION_WINDOW
) -> ShownConversion | None:
    """P(buy | shown) from ``store``'s impressions for ``ranker``'s items, or ``None``.

    ``None`` when fewer than :data:`MIN_SHOWN_CONVERSIONS` impressions converted: the dials
    keep the items' conversion rates.
    """
    counts = read_shown(store, ranker.key_conversion, window)
    index = ranker._lookup(counts.item_ids).astype(np.int64)
    known = index >= 0
    if counts.bought[known].sum() < MIN_SHOWN_CONVERSIONS:
        return None
    rate = ranker._factors.conversion
    fitted = fit_shown(
        index[known], counts.position[known], counts.shown[known], counts.bought[known], rate
    )
    theta = fitted.examination
    summary = {
        "impressions": int(counts.shown[known].sum()),
        "conversions": int(counts.bought[known].sum()),
        "items_shown": int(np.unique(index[known]).size),
        "prior_strength": round(fitted.strength, 3),
        "examination": [round(float(t), 4) for t in theta[: min(theta.size, 10)]],
        "attribution_window_hours": window.total_seconds() / 3600,
    }
    return ShownConversion(fitted.p, float(np.mean(fitted.prior)), summary)
