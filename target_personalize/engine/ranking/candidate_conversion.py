"""The re-ranker's calibrated P(conversion | session) as the objectives' conversion model.

:class:`CandidateConversion` is the :class:`~.objectives.ConversionModel` a
:class:`~.rerank.RerankedSessionRanker` with a calibrated model sets on itself: for the
items among the first stage's candidates of a query it gives the calibrated probability that
the session converts on them (from the candidate features the second stage computes anyway);
every other item keeps its shrunk conversion rate, scaled to the candidates' level. The features of the latest query are
remembered, so a request computes them once for the ranking, the objectives and the P it
reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.ranking.features import candidate_features, first_stage
from target_personalize.engine.ranking.objectives import Objectives

if TYPE_CHECKING:
    from target_personalize.engine.ranking.conversion_model import CalibratedConversionModel
    from target_personalize.engine.ranking.query import Query
    from target_personalize.engine.ranking.rerank import RerankedSessionRanker

__all__ = ["CandidateConversion"]


class CandidateConversion:
    """Calibrated P for a query's candidates, shrunk item rates for the other items.

    Args:
        ranker: the re-ranker whose first stage, features and calibrated model are used.
        model: its calibrated conversion model.
    """

    def __init__(self, ranker: RerankedSessionRanker, model: CalibratedConversionModel) -> None:
        self.ranker = ranker
        self.model = model
        # (query, candidates, features, probabilities or None): one tuple, replaced at once,
        # so concurrent requests never read a mix of two queries.
        # Isotonic steps start at 0 where no candidate converted: half the lowest positive
        # step instead, so a zero P does not erase relevance and margin from the score.
        steps = model._steps_y if model._steps_y is not None else np.zeros(0)
        self._floor = 0.5 * float(steps[steps > 0].min(initial=1.0))
        self._latest: tuple[Query, IntArray, FloatArray, FloatArray | None] | None = None

    def remember(self, query: Query, candidates: IntArray, features: FloatArray) -> None:
        """Keep the candidate features just computed for ``query`` (P is predicted on demand)."""
        self._latest = (query, candidates, features, None)

    def candidates(self, query: Query) -> tuple[IntArray, FloatArray]:
        """The first stage's candidates of ``query`` and their calibrated P."""
        latest = self._latest
        if latest is not None and latest[0] is query:
            _, items, features, probability = latest
        else:
            found = first_stage(
                self.ranker, query, self.ranker.rerank_candidates, None, Objectives()
            )
            items, probability = found.items, None
            features = candidate_features(self.ranker, self.ranker._stats, query, found)
        if probability is None:
            probability = (
                np.maximum(self.model.predict(features), self._floor)
                if items.size
                else np.zeros(0, dtype=np.float64)
            )
            self._latest = (query, items, features, probability)
        return items, probability

    def probability(self, items: IntArray, query: Query) -> FloatArray:
        """P(the session converts on each of ``items``), in the items' order.

        Items outside the candidates get their rate times the ratio of the candidates'
        calibrated P to their rates (summed): a rate is P per session holding the item, the
        calibrated P is per candidate of this session, a much smaller figure, and unscaled
        rates would lift every other item over the candidates.
        """
        candidates, calibrated = self.candidates(query)
        probability = self._rates(items)
        if candidates.size:
            scale = float(calibrated.sum()) / max(float(self._rates(candidates).sum()), 1e-12)
            probability *= scale
            order = np.argsort(candidates)
            at = np.minimum(np.searchsorted(candidates[order], items), candidates.size - 1)
            hit = candidates[order][at] == items
            probability[hit] = calibrated[order[at[hit]]]
        return probability

    def _rates(self, items: IntArray) -> FloatArray:
        rates = self.ranker._factors.conversion
        known = items < rates.size
        return np.where(
            known, rates[np.where(known, items, 0)], self.ranker._factors.base_rate
        ).astype(np.float64)
