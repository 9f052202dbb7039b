"""Online experiments: definitions, sticky assignment and the statistics of the readout.

``definition`` (:class:`Experiment`, :class:`Variant`, the ``--variant``/``--traffic`` forms),
``assignment`` (GrowthBook's hash version 2, so browsers and other services agree),
``visitors`` (the readout's per-visitor input, :class:`VisitorData`), ``moments`` (sums per
arm), ``inference`` (delta-method lift, CUPED, ratio metrics, confidence sequences, the
sample-ratio check) and ``readout`` (:func:`build_readout`, the JSON shape); from the store:
``registry`` (:class:`ExperimentRegistry`), ``sql`` (:func:`read_experiment`, the visitor table
and attribution by SQL) and ``report`` (:func:`readout_from_store`, :func:`readout_html`).
Errors are :class:`ExperimentError`. Definitions of every figure: docs/experiments.md.
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
from target_personalize.engine.experiments.registry import (
    ExperimentRegistry,
    Status,
    StoredExperiment,
)
from target_personalize.engine.experiments.report import readout_from_store, readout_html
from target_personalize.engine.experiments.sql import (
    DEFAULT_ATTRIBUTION_WINDOW,
    DEFAULT_PRE_DAYS,
    Attribution,
    exposed_variants,
    read_experiment,
)
from target_personalize.engine.experiments.visitors import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    VisitorData,
)

__all__ = [
    "DEFAULT_ATTRIBUTION_WINDOW",
    "DEFAULT_MIN_SAMPLE",
    "DEFAULT_N_TUNE",
    "DEFAULT_PRE_DAYS",
    "METRICS",
    "OPTIONAL_COLUMNS",
    "RANKERS",
    "REQUIRED_COLUMNS",
    "SRM_THRESHOLD",
    "ArmStatistic",
    "Attribution",
    "Estimate",
    "Experiment",
    "ExperimentError",
    "ExperimentRegistry",
    "FloatArray",
    "IntArray",
    "Lift",
    "Metric",
    "Moments",
    "RankerKind",
    "Readout",
    "SampleRatio",
    "Status",
    "StoredExperiment",
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
    "exposed_variants",
    "fnv1a32",
    "mean_statistic",
    "parse_traffic",
    "ratio_statistic",
    "read_experiment",
    "readout_from_store",
    "readout_html",
    "relative_lift",
    "sample_ratio_mismatch",
    "sequential_halfwidth",
    "welch_dof",
]
