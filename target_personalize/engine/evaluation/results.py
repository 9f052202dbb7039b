"""What an evaluation reports: per ranker, the split, and the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["EvaluationReport", "ModelResult", "SplitInfo"]


@dataclass(frozen=True)
class ModelResult:
    """One ranker's figures on the test sessions.

    Attributes:
        name: label of the ranker (with its objectives, if any).
        k: list length.
        predictions: next-item predictions made.
        hit_rate: HR@k.
        mrr: MRR@k.
        conversion_predictions: predictions whose session later carts or converts.
        conversion_hit_rate: share of those with a later-converted item in the top k
            (``None`` without such predictions).
        value_captured: share of the later-converted value that the top k holds (``None``
            without value data).
        value_at_k: that value in money, per conversion prediction.
        coverage: distinct recommended items over all training items.
        fit_seconds: time to fit.
        predict_ms: mean time per prediction (ms).
        predict_p99_ms: 99th percentile time per prediction (ms).
    """

    name: str
    k: int
    predictions: int
    hit_rate: float
    mrr: float
    conversion_predictions: int
    conversion_hit_rate: float | None
    value_captured: float | None
    value_at_k: float | None
    coverage: float
    fit_seconds: float
    predict_ms: float
    predict_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "k": self.k,
            "predictions": self.predictions,
            f"hr@{self.k}": self.hit_rate,
            f"mrr@{self.k}": self.mrr,
            "conversion_predictions": self.conversion_predictions,
            f"conversion_hit_rate@{self.k}": self.conversion_hit_rate,
            f"value_captured@{self.k}": self.value_captured,
            f"value_at_{self.k}": self.value_at_k,
            f"coverage@{self.k}": self.coverage,
            "fit_seconds": self.fit_seconds,
            "predict_ms": self.predict_ms,
            "predict_p99_ms": self.predict_p99_ms,
        }


@dataclass(frozen=True)
class SplitInfo:
    """What the split holds.

    Attributes:
        train_events: item events used for training.
        train_sessions: training sessions.
        test_events: item events of the test sessions.
        test_sessions: test sessions.
        items: training items (the ranking universe).
        cut: the time split, if any (UTC).
        source: where the data came from.
        value_kind: which business value the items have (margin, price, order value, none).
    """

    train_events: int
    train_sessions: int
    test_events: int
    test_sessions: int
    items: int
    cut: datetime | None
    source: str
    value_kind: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "train_events": self.train_events,
            "train_sessions": self.train_sessions,
            "test_events": self.test_events,
            "test_sessions": self.test_sessions,
            "items": self.items,
            "cut": self.cut.isoformat() if self.cut else None,
            "source": self.source,
            "value_kind": self.value_kind,
        }


@dataclass(frozen=True)
class EvaluationReport:
    """The evaluation of several rankers on one split.

    Attributes:
        k: list length.
        split: the split.
        results: one result per ranker, in the order given.
        key_conversion: the conversion the objectives and conversion metrics use.
    """

    k: int
    split: SplitInfo
    results: tuple[ModelResult, ...]
    key_conversion: str = "purchase"
    protocol: str = field(
        default="session-rec next-item: every position, all training items, micro-averaged"
    )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "k": self.k,
            "protocol": self.protocol,
            "key_conversion": self.key_conversion,
            "split": self.split.as_dict(),
            "results": [r.as_dict() for r in self.results],
        }

    def result(self, name: str) -> ModelResult:
        """The result of the ranker labelled ``name``.

        Raises:
            KeyError: if no ranker has that label.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)
