"""A calibrated conversion model: P(key conversion of item i | the session so far).

A LightGBM binary classifier over the candidate features of :mod:`.features`, then an
isotonic calibration fitted on sessions the classifier did not see, so the output is a
probability a shop can multiply by a margin or a price. Saved as plain arrays (the LightGBM
model text and the isotonic steps), never pickled.

:func:`expected_calibration_error` measures how far the probabilities are from the observed
rates (equal-width bins, weighted by their share of the predictions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.exceptions import RankerError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy.typing as npt

__all__ = ["CalibratedConversionModel", "expected_calibration_error"]


def expected_calibration_error(
    probability: FloatArray, outcome: npt.ArrayLike, bins: int = 15
) -> float:
    """Sum over equal-width probability bins of |mean probability - observed rate| x share."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if p.size == 0:
        return 0.0
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    mean_p = np.bincount(which, weights=p, minlength=bins)
    mean_y = np.bincount(which, weights=y, minlength=bins)
    return float(np.abs(mean_p - mean_y).sum() / p.size)


@dataclass
class CalibratedConversionModel:
    """Gradient-boosted trees, isotonic-calibrated on held-out groups (sessions).

    Args:
        n_estimators: boosting rounds.
        learning_rate: shrinkage per round.
        num_leaves: leaves per tree.
        calibration_share: share of the groups kept aside to fit the calibration.
        random_state: seed of the trees and of the calibration split.
    """

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    calibration_share: float = 0.3
    random_state: int = 0
    _model: str = ""
    _steps_x: FloatArray | None = None
    _steps_y: FloatArray | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_arrays`) has run."""
        return bool(self._model)

    def fit(
        self, features: FloatArray, outcome: npt.ArrayLike, groups: IntArray
    ) -> CalibratedConversionModel:
        """Fit on rows of ``features`` with binary ``outcome``; ``groups`` ties rows to sessions.

        Raises:
            RankerError: when the outcome has no positives or no negatives.
        """
        import lightgbm as lgb  # noqa: PLC0415 - loaded only by the models that use it
        from sklearn.isotonic import IsotonicRegression  # noqa: PLC0415 - only when fitting

        y = np.asarray(outcome, dtype=np.float64)
        if y.min(initial=1.0) == y.max(initial=0.0):
            raise RankerError(
                "the conversion model needs both converting and non-converting candidates; "
                "load sessions with add-to-cart or purchase events"
            )
        distinct = np.unique(groups)
        rng = np.random.default_rng(self.random_state)
        held = rng.random(distinct.size) < self.calibration_share
        calibrate = np.isin(groups, distinct[held])
        booster = lgb.train(
            {
                "objective": "binary",
                "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves,
                "min_data_in_leaf": 20,
                "feature_fraction": 0.9,
                "verbose": -1,
                "seed": self.random_state,
                "num_threads": 4,
            },
            lgb.Dataset(features[~calibrate], y[~calibrate]),
            num_boost_round=self.n_estimators,
        )
        self._model = booster.model_to_string()
        raw = booster.predict(features[calibrate])
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        isotonic.fit(raw, y[calibrate])
        self._steps_x = np.asarray(isotonic.X_thresholds_, dtype=np.float64)
        self._steps_y = np.asarray(isotonic.y_thresholds_, dtype=np.float64)
        self._booster = booster
        return self

    def predict(self, features: FloatArray) -> FloatArray:
        """The calibrated probability of each row.

        Raises:
            RankerError: before fit.
        """
        if not self.fitted or self._steps_x is None or self._steps_y is None:
            raise RankerError("the conversion model is not fitted: call fit() first")
        raw = np.asarray(self._get_booster().predict(features), dtype=np.float64)
        return np.interp(raw, self._steps_x, self._steps_y)

    def _get_booster(self) -> Any:
        booster = getattr(self, "_booster", None)
        if booster is None:
            import lightgbm as lgb  # noqa: PLC0415 - loaded only by the models that use it

            booster = lgb.Booster(model_str=self._model)
            self._booster = booster
        return booster

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The fitted model as named arrays (model text as bytes, calibration steps)."""
        if not self.fitted or self._steps_x is None or self._steps_y is None:
            return {}
        return {
            f"{prefix}_model": np.frombuffer(self._model.encode("utf-8"), dtype=np.uint8),
            f"{prefix}_steps_x": self._steps_x,
            f"{prefix}_steps_y": self._steps_y,
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], prefix: str
    ) -> CalibratedConversionModel | None:
        """The inverse of :meth:`arrays` (``None`` when they hold no model)."""
        if f"{prefix}_model" not in arrays:
            return None
        model = cls()
        model._model = bytes(arrays[f"{prefix}_model"].astype(np.uint8)).decode("utf-8")
        model._steps_x = np.asarray(arrays[f"{prefix}_steps_x"], dtype=np.float64)
        model._steps_y = np.asarray(arrays[f"{prefix}_steps_y"], dtype=np.float64)
        return model
