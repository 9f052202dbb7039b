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

__all__ = [
    "RANKERS",
    "Experiment",
    "ExperimentError",
    "RankerKind",
    "Variant",
    "assign",
    "bucket",
    "bucket_ranges",
    "choose_variation",
    "fnv1a32",
    "parse_traffic",
]
