"""The readout's input: one row per visitor of an experiment, as numpy columns.

The rows come from the store (one SQL query, fetched as an Arrow table): visitors exposed to
exactly one variant, their key conversions at or after their first exposure, the revenue and
margin of those, and optionally attributed clicks and list impressions and the same measures
from before the first exposure (for CUPED). Visitors exposed to more than one variant are not
rows; their number is passed along as ``multiple_variants``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from target_personalize.engine.experiments.errors import ExperimentError
from target_personalize.engine.experiments.moments import FloatArray, IntArray

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "VisitorData"]

#: Columns every input has (besides ``variant_id``).
REQUIRED_COLUMNS = ("conversion_events", "revenue")
#: Columns an input may have; a metric needing a missing column is left out of the readout.
OPTIONAL_COLUMNS = (
    "margin",
    "clicks",
    "impressions",
    "pre_conversion_events",
    "pre_revenue",
    "pre_margin",
)
_COUNTS = frozenset({"conversion_events", "clicks", "impressions", "pre_conversion_events"})
_PAIRS = (("clicks", "impressions"), ("impressions", "clicks"), ("pre_margin", "margin"))


@dataclass(frozen=True)
class VisitorData:
    """Per-visitor columns of one experiment (all of one length, one entry per visitor).

    Attributes:
        variant_ids: the arms, in order; arms without visitors belong here too.
        variant: each visitor's arm, an index into ``variant_ids``.
        conversion_events: key conversions at or after the visitor's first exposure.
        revenue: their revenue.
        margin: their margin, when the catalog has cost or margin.
        clicks: attributed click-throughs on recommended lists.
        impressions: recommended lists shown.
        pre_conversion_events: key conversions before the first exposure (CUPED covariate).
        pre_revenue: their revenue (CUPED covariate).
        pre_margin: their margin (CUPED covariate).
        multiple_variants: visitors left out because they were exposed to more than one variant.
    """

    variant_ids: tuple[str, ...]
    variant: IntArray
    conversion_events: FloatArray
    revenue: FloatArray
    margin: FloatArray | None = None
    clicks: FloatArray | None = None
    impressions: FloatArray | None = None
    pre_conversion_events: FloatArray | None = None
    pre_revenue: FloatArray | None = None
    pre_margin: FloatArray | None = None
    multiple_variants: int = 0

    def __post_init__(self) -> None:
        if len(set(self.variant_ids)) != len(self.variant_ids) or not self.variant_ids:
            raise ExperimentError(f"variant ids must be distinct and given: {self.variant_ids}")
        variant = np.ascontiguousarray(self.variant, dtype=np.intp)
        if variant.ndim != 1:
            raise ExperimentError("column 'variant_id' must be one-dimensional")
        if variant.size and (variant.min() < 0 or variant.max() >= len(self.variant_ids)):
            raise ExperimentError(
                f"column 'variant_id': arm indexes must be in [0, {len(self.variant_ids)})"
            )
        object.__setattr__(self, "variant", variant)
        for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, _checked(name, values, variant.size))
        for name, needs in _PAIRS:
            if getattr(self, name) is not None and getattr(self, needs) is None:
                raise ExperimentError(f"column {name!r} is given without column {needs!r}")
        if self.multiple_variants < 0:
            raise ExperimentError(
                f"multiple_variants must be a count >= 0, got {self.multiple_variants}"
            )

    def __len__(self) -> int:
        return int(self.variant.size)

    def columns(self) -> Iterator[tuple[str, FloatArray]]:
        """The measure columns that are present, by name."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("variant_ids", "variant") and isinstance(value, np.ndarray):
                yield f.name, value

    @classmethod
    def from_arrow(
        cls,
        table: pa.Table,
        *,
        variant_ids: Sequence[str] | None = None,
        multiple_variants: int = 0,
    ) -> VisitorData:
        """Read the columns of an Arrow table (e.g. DuckDB's ``fetch_arrow_table()``).

        Args:
            table: a ``variant_id`` column (string or dictionary-encoded), the
                :data:`REQUIRED_COLUMNS` and any of the :data:`OPTIONAL_COLUMNS`; other
                columns are ignored.
            variant_ids: the experiment's arms in order (so arms without visitors are kept);
                default: the arms in the table, in order of first appearance.
            multiple_variants: visitors exposed to more than one variant (left out of the table).

        Raises:
            ExperimentError: for a missing column, a null or unknown variant, or a bad value.
        """
        missing = [c for c in ("variant_id", *REQUIRED_COLUMNS) if c not in table.column_names]
        if missing:
            raise ExperimentError(f"visitor table: missing column(s) {', '.join(missing)}")
        encoded = pc.dictionary_encode(table.column("variant_id")).combine_chunks()
        if encoded.null_count:
            raise ExperimentError(f"column 'variant_id': {encoded.null_count} null value(s)")
        seen = [str(v) for v in encoded.dictionary.to_pylist()]
        ids = tuple(variant_ids) if variant_ids is not None else tuple(seen)
        unknown = sorted(set(seen) - set(ids))
        if unknown:
            raise ExperimentError(
                f"column 'variant_id': {', '.join(map(repr, unknown))} not among the "
                f"experiment's variants ({', '.join(ids)})"
            )
        position = np.array([ids.index(v) for v in seen], dtype=np.intp)
        codes = position[encoded.indices.to_numpy(zero_copy_only=False)]
        present = {
            name: table.column(name).to_numpy()
            for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
            if name in table.column_names
        }
        return cls(ids, codes, multiple_variants=multiple_variants, **present)


def _checked(name: str, values: object, size: int) -> FloatArray:
    try:
        array = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"column {name!r}: not numbers ({exc})") from None
    if array.shape != (size,):
        raise ExperimentError(f"column {name!r}: {array.size} values for {size} visitors")
    bad = ~np.isfinite(array)
    if name in _COUNTS:
        bad |= array < 0
    if bad.any():
        rows = np.flatnonzero(bad)
        what = "missing, infinite or negative" if name in _COUNTS else "missing or infinite"
        raise ExperimentError(
            f"column {name!r}: {rows.size} value(s) {what}, the first at row {int(rows[0])}"
        )
    return array
