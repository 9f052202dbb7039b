"""A learning-to-rank second stage over the session ranker's candidates.

:class:`RerankedSessionRanker` is a :class:`SessionRanker` whose answer is re-ordered by a
LightGBM LambdaRank model: the first stage proposes its ``rerank_candidates`` best items, the
model scores them from :mod:`.features`, and they come back in the model's order, ahead of every
other item (which keep the first stage's order behind them). Objectives then weigh the result
as for any ranker.

Training never looks past the training data: its sessions are split into ``folds`` random
folds (or, with ``folds=0``, by end time: the latest ``holdout_share`` against the rest), a
first stage is fitted on the other folds, and every prefix of a fold's sessions becomes a query
whose candidates are labelled by the funnel's grades: 3 for items the session later converts on
(the key conversion), 2 for items it later adds to cart, 1 for the next item (YooChoose's
clicks: the next click). The first stage that serves is then fitted on all of it.

With conversions in the data, the same examples train a :class:`CalibratedConversionModel`: the
calibrated probability that the session converts on a candidate
(:meth:`RerankedSessionRanker.conversion_probabilities`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from target_personalize.engine.arrays import BoolArray, FloatArray, IntArray
from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.ranking.candidate_conversion import CandidateConversion
from target_personalize.engine.ranking.conversion_model import CalibratedConversionModel
from target_personalize.engine.ranking.event_weights import CART_TYPES
from target_personalize.engine.ranking.features import (
    FEATURE_NAMES,
    ItemStats,
    candidate_features,
    first_stage,
)
from target_personalize.engine.ranking.objectives import Objectives
from target_personalize.engine.ranking.query import Query
from target_personalize.engine.ranking.session_ranker import SessionRanker

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy.typing as npt

    from target_personalize.engine.ranking.interactions import Interactions

__all__ = ["RERANKERS", "RerankedSessionRanker", "TrainingExamples", "training_examples"]

logger = logging.getLogger(__name__)

#: Second stages by the name the CLI takes.
RERANKERS = ("lambdarank",)

#: Graded labels: the key conversion, an add-to-cart, the next item.
GRADE_CONVERSION, GRADE_CART, GRADE_NEXT = 3, 2, 1

#: Parameters of the second stage (the others are the first stage's).
_OWN_PARAMS = frozenset(
    {
        "rerank_candidates",
        "holdout_share",
        "folds",
        "max_train_queries",
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "early_stopping_rounds",
        "calibrated_dials",
    }
)

#: Fewest converting candidates for which a conversion model is trained.
_MIN_CONVERSIONS = 20


@dataclass(frozen=True)
class TrainingExamples:
    """Candidate rows of training queries.

    Attributes:
        features: one row of :data:`~.features.FEATURE_NAMES` per candidate.
        grade: the graded label per row (0 = nothing happened to it).
        converts: whether the session later adds the row's item to cart or converts on it.
        group: the query of each row (rows of a query are contiguous).
    """

    features: FloatArray
    grade: IntArray
    converts: BoolArray
    group: IntArray

    @classmethod
    def concat(cls, parts: list[TrainingExamples]) -> TrainingExamples:
        """The rows of every part, their queries numbered on."""
        offsets = np.cumsum([0] + [int(p.group.max(initial=-1)) + 1 for p in parts])
        return cls(
            np.vstack([p.features for p in parts]),
            np.concatenate([p.grade for p in parts]),
            np.concatenate([p.converts for p in parts]),
            np.concatenate([p.group + offsets[i] for i, p in enumerate(parts)]),
        )

    def split_queries(self, share: float, seed: int) -> tuple[TrainingExamples, TrainingExamples]:
        """(the other queries, a random ``share`` of the queries), each renumbered."""
        queries = int(self.group.max(initial=-1)) + 1
        held = np.random.default_rng(seed).random(queries) < share
        return self.take(~held[self.group]), self.take(held[self.group])

    def take(self, rows: BoolArray) -> TrainingExamples:
        """The chosen rows, their queries renumbered from 0."""
        _, group = np.unique(self.group[rows], return_inverse=True)
        return TrainingExamples(
            self.features[rows], self.grade[rows], self.converts[rows], group.astype(np.int64)
        )

    def dataset(self) -> Any:
        """A LightGBM ranking dataset of the rows."""
        import lightgbm as lgb  # noqa: PLC0415 - loaded only by the models that use it

        return lgb.Dataset(self.features, self.grade, group=self.group_sizes())

    def group_sizes(self) -> IntArray:
        """Rows per query, in order."""
        return np.bincount(self.group).astype(np.int64)

    def with_positive_groups(self) -> TrainingExamples:
        """Only the queries with at least one positive row (the others teach LambdaRank nothing)."""
        best = np.zeros(int(self.group.max(initial=-1)) + 1, dtype=np.int64)
        np.maximum.at(best, self.group, self.grade)
        return self.take(best[self.group] > 0)


def training_examples(
    first: SessionRanker,
    stats: ItemStats,
    sessions: Interactions,
    *,
    candidates: int,
    key_conversion: str,
    max_queries: int,
) -> TrainingExamples:
    """Every prefix of ``sessions`` as a query to ``first`` (fitted on earlier data), labelled.

    ``sessions`` shares ``first``'s item vocabulary; the latest sessions are used first when
    they hold more than ``max_queries`` prefixes.
    """
    grades = np.array(
        [
            GRADE_CONVERSION
            if name == key_conversion
            else GRADE_CART
            if name in CART_TYPES
            else GRADE_NEXT
            for name in sessions.event_types
        ]
        or [GRADE_NEXT],
        dtype=np.int64,
    )
    kind_map = np.array([first._kind_index(t) for t in sessions.event_types] or [0], np.int64)
    known = np.bincount(first.data.item, minlength=len(first.items)) > 0
    visitors = sessions.visitors[sessions.session_visitor]
    order_sessions, starts = sessions.session_bounds()
    ends = sessions.session_end_times()[order_sessions]
    blocks: list[FloatArray] = []
    labels: list[IntArray] = []
    converting: list[BoolArray] = []
    groups: list[IntArray] = []
    queries = 0
    data = first.data
    for s in np.argsort(-ends, kind="stable").tolist():
        if queries >= max_queries:
            break
        start, end = int(starts[s]), int(starts[s + 1])
        items = sessions.item[start:end].astype(np.int64)
        kinds = sessions.kind[start:end].astype(np.int64)
        ts = sessions.ts[start:end]
        history = first._history_rows(str(visitors[int(order_sessions[s])]))
        row_grade = grades[kinds]
        for i in range(1, end - start):
            query = Query(
                items=items[:i],
                kinds=kind_map[kinds[:i]],
                ts=ts[:i],
                history_items=data.item[history].astype(np.int64),
                history_kinds=data.kind[history].astype(np.int64),
                history_ts=data.ts[history],
                now=float(ts[i - 1]),
            )
            found = first_stage(first, query, candidates, known, Objectives())
            if found.items.size == 0:
                continue
            label = np.where(found.items == items[i], GRADE_NEXT, 0)
            later = row_grade[i:] >= GRADE_CART
            if later.any():
                best = np.zeros(len(first.items), dtype=np.int64)
                np.maximum.at(best, items[i:][later], row_grade[i:][later])
                label = np.maximum(label, best[found.items])
            blocks.append(candidate_features(first, stats, query, found))
            labels.append(label)
            converting.append(label >= GRADE_CART)
            groups.append(np.full(found.items.size, queries, dtype=np.int64))
            queries += 1
    if not blocks:
        width = len(FEATURE_NAMES)
        return TrainingExamples(
            np.zeros((0, width)),
            np.zeros(0, np.int64),
            np.zeros(0, np.bool_),
            np.zeros(0, np.int64),
        )
    return TrainingExamples(
        np.vstack(blocks),
        np.concatenate(labels),
        np.concatenate(converting),
        np.concatenate(groups),
    )


class RerankedSessionRanker(SessionRanker):
    """The session ranker with a LambdaRank second stage (and a calibrated conversion model).

    Args:
        rerank_candidates: first-stage items the second stage re-orders.
        holdout_share: with ``folds`` below 2, the share of the training sessions (the
            latest) that the second stage learns from, with a first stage fitted on the others.
        folds: when 2 or more (the default), the second stage learns instead from every
            training session, split at random into this many folds, each queried to a first
            stage fitted on the other folds (more examples, and a first stage closer to the
            one that serves).
        max_train_queries: session prefixes it learns from at most (the latest first).
        n_estimators: boosting rounds of the ranking model.
        learning_rate: its shrinkage per round.
        num_leaves: leaves per tree.
        early_stopping_rounds: when above 0, a random 20% of the training queries is kept
            aside and boosting stops (at most ``n_estimators`` rounds) once their NDCG@20 has
            not improved for this many rounds.
        calibrated_dials: when true, the calibrated model supplies P(conversion) to the
            objectives for the first stage's candidates. Off by default: on ``bench/shop.py``
            it made the margin dial earn less than the item rates (docs/ranking.md).
        **kwargs: see :class:`SessionRanker`.
    """

    name: ClassVar[str] = "session ranker + lambdarank"

    def __init__(
        self,
        *,
        rerank_candidates: int = 100,
        holdout_share: float = 0.3,
        folds: int = 3,
        max_train_queries: int = 30_000,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        early_stopping_rounds: int = 0,
        calibrated_dials: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < holdout_share < 1.0:
            raise RankerError(f"holdout_share must be between 0 and 1, got {holdout_share}")
        self.rerank_candidates = rerank_candidates
        self.holdout_share = holdout_share
        self.folds = folds
        self.max_train_queries = max_train_queries
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.early_stopping_rounds = early_stopping_rounds
        self.calibrated_dials = calibrated_dials
        self._model_text = ""
        self._booster: Any = None
        self.calibrated_model: CalibratedConversionModel | None = None
        self.train_seconds = 0.0

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_params(),
            "rerank_candidates": self.rerank_candidates,
            "holdout_share": self.holdout_share,
            "folds": self.folds,
            "max_train_queries": self.max_train_queries,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "early_stopping_rounds": self.early_stopping_rounds,
            "calibrated_dials": self.calibrated_dials,
        }

    def _first_stage_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if k not in _OWN_PARAMS}

    # Fitting

    def _fit(self, data: Interactions) -> None:
        started = time.perf_counter()
        self._train_second_stage(data)
        self.train_seconds = time.perf_counter() - started
        super()._fit(data)
        self._stats = ItemStats.build(data)
        self._use_calibrated_model()

    def _use_calibrated_model(self) -> None:
        """With ``calibrated_dials``, the calibrated model supplies P to the objectives."""
        own = isinstance(self.conversion_model, CandidateConversion)
        model = self.calibrated_model if self.calibrated_dials else None
        if model is not None and (self.conversion_model is None or own):
            self.conversion_model = CandidateConversion(self, model)
        elif own:
            self.conversion_model = None

    def _train_second_stage(self, data: Interactions) -> None:
        import lightgbm as lgb  # noqa: PLC0415 - loaded only by the models that use it

        self._model_text, self._booster, self.calibrated_model = "", None, None
        splits = self._training_splits(data)
        if not splits:
            logger.warning("%s: too few sessions to learn a second stage", self.name)
            return
        examples = TrainingExamples.concat(
            [
                training_examples(
                    SessionRanker(**self._first_stage_params()).fit(
                        early, event_weights=self.event_weights, key_conversion=self.key_conversion
                    ),
                    ItemStats.build(early),
                    late,
                    candidates=self.rerank_candidates,
                    key_conversion=self.key_conversion,
                    max_queries=self.max_train_queries // len(splits),
                )
                for early, late in splits
            ]
        )
        if int(examples.converts.sum()) >= _MIN_CONVERSIONS and not examples.converts.all():
            self.calibrated_model = CalibratedConversionModel(random_state=self._seed()).fit(
                examples.features, examples.converts, examples.group
            )
        ranked = examples.with_positive_groups()
        if ranked.group.size == 0:
            logger.warning("%s: no training query found its target among the candidates", self.name)
            return
        train, valid = ranked.split_queries(
            0.2 if self.early_stopping_rounds else 0.0, self._seed()
        )
        booster = lgb.train(
            {
                "objective": "lambdarank",
                "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves,
                "min_data_in_leaf": 50,
                "feature_fraction": 0.9,
                "lambdarank_truncation_level": 30,
                "label_gain": [0.0, 1.0, 3.0, 7.0],
                "verbose": -1,
                "seed": self._seed(),
                "num_threads": 4,
                "deterministic": True,
                "force_row_wise": True,
                "metric": "ndcg",
                "eval_at": [20],
            },
            train.dataset(),
            num_boost_round=self.n_estimators,
            valid_sets=[valid.dataset()] if valid.group.size else None,
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
            if valid.group.size
            else None,
        )
        self._model_text = booster.model_to_string()
        self._booster = booster
        logger.info(
            "%s: second stage learned from %d queries (%d candidate rows)",
            self.name,
            int(ranked.group.max()) + 1,
            ranked.grade.size,
        )

    def _training_splits(self, data: Interactions) -> list[tuple[Interactions, Interactions]]:
        """(first-stage data, query sessions) pairs, all from the training data."""
        ends = data.session_end_times()
        present = ends[np.isfinite(ends)]
        if present.size < 10:
            return []
        if self.folds >= 2:
            fold = np.random.default_rng(self._seed()).integers(self.folds, size=data.n_sessions)
            return [
                (data.take(fold[data.session] != f), data.take(fold[data.session] == f))
                for f in range(self.folds)
            ]
        return [data.split_by_time(float(np.quantile(present, 1.0 - self.holdout_share)))]

    def _seed(self) -> int:
        return self.random_state if isinstance(self.random_state, int) else 0

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        arrays = super()._arrays()
        if self._model_text:
            arrays["rerank_model"] = np.frombuffer(self._model_text.encode("utf-8"), np.uint8)
        if self.calibrated_model is not None:
            arrays.update(self.calibrated_model.arrays("conversion"))
        return arrays

    def _restore(self, arrays: Mapping[str, npt.NDArray[Any]]) -> bool:
        if "rerank_model" not in arrays or not super()._restore(arrays):
            return False
        import lightgbm as lgb  # noqa: PLC0415 - loaded only by the models that use it

        self._model_text = bytes(arrays["rerank_model"].astype(np.uint8)).decode("utf-8")
        self._booster = lgb.Booster(model_str=self._model_text)
        self.calibrated_model = CalibratedConversionModel.from_arrays(arrays, "conversion")
        self._stats = ItemStats.build(self.data)
        self._use_calibrated_model()
        return True

    # Scoring

    def _score(self, query: Query, objectives: Objectives) -> tuple[FloatArray, FloatArray]:
        if self._booster is None or query.empty:
            return super()._score(query, objectives)
        found = first_stage(self, query, self.rerank_candidates, None, Objectives())
        if found.items.size == 0:
            return super()._score(query, objectives)
        features = candidate_features(self, self._stats, query, found)
        if isinstance(self.conversion_model, CandidateConversion):
            self.conversion_model.remember(query, found.items, features)
        learned = np.asarray(self._booster.predict(features, num_threads=1), np.float64)
        # Candidates in the model's order in (0.5, 1]; every other item behind, in (0, 0.5].
        relevance = 0.5 * found.relevance
        relevance[found.items] = 0.5 + 0.5 * np.exp(learned - learned.max())
        ratio = None
        if objectives.probability_power and self.conversion_model is not None:
            ratio = self._factors.conversion_ratio(self._probability(query, relevance))
        return objectives.score(relevance, self._factors, ratio), relevance

    def conversion_probabilities(
        self, user_id: str | None = None, session_id: str | None = None, k: int = 20
    ) -> list[tuple[str, float]]:
        """The first stage's ``k`` best items with their calibrated P(conversion), best first.

        Raises:
            RankerError: when the training data held too few conversions for the model.
        """
        if self.calibrated_model is None:
            raise RankerError(
                f"{self.name} has no conversion model: the training data held fewer than "
                f"{_MIN_CONVERSIONS} converting candidates"
            )
        query = self._query(user_id, session_id)
        found = first_stage(self, query, k, None, Objectives())
        if found.items.size == 0:
            return []
        p = self.calibrated_model.predict(candidate_features(self, self._stats, query, found))
        return [
            (str(self.items.item_ids[i]), float(q)) for i, q in zip(found.items, p, strict=True)
        ]
