"""Online experiments: definitions, sticky assignment and the statistics of the readout.

``definition`` (:class:`Experiment`, :class:`Variant`, the ``--variant``/``--traffic`` forms),
``assignment`` (GrowthBook's hash version 2, so browsers and other services agree),
``visitors`` (the readout's per-visitor input, :class:`VisitorData`), ``moments`` (sums per
arm), ``inference`` (delta-method lift, CUPED, ratio metrics, confidence sequences, the
sample-ratio check) and ``readout`` (:func:`build_readout`, the JSON shape). Errors are
:class:`ExperimentError`. Definitions of every figure: docs/experiments.md.
"""

from __future__ import annotations

from target_personalize.engine.experiments.assignment import (
    assign,
    bucket,
    bucket_ranges,
    choose_variation,
    fnv1a32,
)
from target_personalize.engine.experiments.definition import (
    RANKERS,
    Experiment,
    RankerKind,
    Variant,
    parse_traffic,
)
from target_personalize.engine.experiments.errors import ExperimentError
from target_personalize.engine.experiments.inference import (
    DEFAULT_N_TUNE,
    SRM_THRESHOLD,
    ArmStatistic,
    Estimate,
    SampleRatio,
    cuped_lift,
    mean_statistic,
    ratio_statistic,
    relative_lift,
    sample_ratio_mismatch,
    sequential_halfwidth,
    welch_dof,
)
from target_personalize.engine.experiments.moments import FloatArray, IntArray, Moments, arm_moments
from target_personalize.engine.experiments.readout import (
    DEFAULT_MIN_SAMPLE,
    METRICS,
    Lift,
    Metric,
    Readout,
    VariantSummary,
    build_readout,
)
from target_personalize.engine.experiments.visitors import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    VisitorData,
)

__all__ = [
    "DEFAULT_MIN_SAMPLE",
    "DEFAULT_N_TUNE",
    "METRICS",
    "OPTIONAL_COLUMNS",
    "RANKERS",
    "REQUIRED_COLUMNS",
    "SRM_THRESHOLD",
    "ArmStatistic",
    "Estimate",
    "Experiment",
    "ExperimentError",
    "FloatArray",
    "IntArray",
    "Lift",
    "Metric",
    "Moments",
    "RankerKind",
    "Readout",
    "SampleRatio",
    "Variant",
    "VariantSummary",
    "VisitorData",
    "arm_moments",
    "assign",
    "bucket",
    "bucket_ranges",
    "build_readout",
    "choose_variation",
    "cuped_lift",
    "fnv1a32",
    "mean_statistic",
    "parse_traffic",
    "ratio_statistic",
    "relative_lift",
    "sample_ratio_mismatch",
    "sequential_halfwidth",
    "welch_dof",
]
