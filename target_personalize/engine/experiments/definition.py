"""Experiment definitions as typed values, and their command-line form.

A variant is a way of ranking, written as a *spec*:

* ``engine``: the engine with its configured objectives;
* ``objectives:conversion=1,margin=0.5``: the engine with these objective weights;
* ``popularity``: the most popular items;
* ``views_only``: the views-only item-kNN baseline;
* ``none``: the shop's own order, not re-ranked.

The command-line form is ``--variant ID=SPEC`` (repeated) and ``--traffic 50,50``: one share of
all visitors per variant, in percent. Shares adding up to less than 100 leave the remaining
visitors out of the experiment (GrowthBook's *coverage*); ``--traffic 10,10`` puts 20% of the
visitors in, split evenly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from target_personalize.engine import Objectives, RankerError
from target_personalize.engine.experiments.errors import ExperimentError

__all__ = ["RANKERS", "Experiment", "RankerKind", "Variant", "parse_traffic"]

RankerKind = Literal["engine", "popularity", "views_only", "none"]
#: The rankers a variant can name.
RANKERS: tuple[RankerKind, ...] = get_args(RankerKind)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_OBJECTIVES = "objectives:"


def _check_id(value: str, what: str) -> None:
    if not _ID.fullmatch(value):
        raise ExperimentError(
            f"{what} {value!r} must be 1-100 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )


def _number(value: float) -> str:
    short = format(value, "g")
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment.

    Attributes:
        variant_id: the arm's id, as reported in exposures and the readout.
        ranker: how the arm ranks items (see :data:`RANKERS`).
        objectives: objective weights replacing the engine's own (only with ``ranker="engine"``).
    """

    variant_id: str
    ranker: RankerKind = "engine"
    objectives: Objectives | None = None

    def __post_init__(self) -> None:
        _check_id(self.variant_id, "variant id")
        if self.ranker not in RANKERS:
            raise ExperimentError(
                f"variant {self.variant_id!r}: unknown ranker {self.ranker!r}; use one of "
                f"{', '.join(RANKERS)} or objectives:NAME=WEIGHT,..."
            )
        if self.objectives is not None and self.ranker != "engine":
            raise ExperimentError(
                f"variant {self.variant_id!r}: objective weights apply to the engine only, "
                f"not to {self.ranker!r}"
            )

    @property
    def spec(self) -> str:
        """The ranking as written after ``ID=`` (``popularity``, ``objectives:conversion=1``...)."""
        if self.objectives is None:
            return self.ranker
        # Revenue and engagement only when set, so specs stored before them read the same.
        weights = ",".join(
            f"{k}={_number(v)}"
            for k, v in self.objectives.as_dict().items()
            if k not in {"revenue", "engagement"} or v
        )
        return _OBJECTIVES + weights

    @classmethod
    def parse(cls, text: str) -> Variant:
        """A variant from its command-line form ``ID=SPEC``.

        Raises:
            ExperimentError: naming the part of ``text`` at fault.
        """
        where = f"variant {text!r}"
        variant_id, sep, spec = text.partition("=")
        variant_id, spec = variant_id.strip(), spec.strip()
        if not sep or not variant_id or not spec:
            raise ExperimentError(
                f"{where}: write ID=RANKER, e.g. control=popularity or "
                "engine=objectives:conversion=1,margin=0.5"
            )
        try:
            _check_id(variant_id, "variant id")
        except ExperimentError as exc:
            raise ExperimentError(f"{where}: {exc}") from None
        if spec.startswith(_OBJECTIVES):
            return cls(variant_id, "engine", _parse_objectives(spec[len(_OBJECTIVES) :], where))
        if spec not in RANKERS:
            raise ExperimentError(
                f"{where}: unknown ranker {spec!r}; use one of {', '.join(RANKERS)} "
                "or objectives:NAME=WEIGHT,..."
            )
        return cls(variant_id, spec)


def _parse_objectives(text: str, where: str) -> Objectives:
    try:
        return Objectives.from_pairs(text.split(","))
    except RankerError as exc:
        raise ExperimentError(f"{where}: {exc}") from None


def parse_traffic(text: str, variant_ids: Sequence[str]) -> tuple[tuple[float, ...], float]:
    """Split ``--traffic 50,50`` (percent of all visitors) into weights and coverage.

    Returns:
        The variants' weights (adding up to 1) and the share of visitors in the experiment.

    Raises:
        ExperimentError: naming the share at fault.
    """
    where = f"traffic {text!r}"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(variant_ids):
        raise ExperimentError(
            f"{where}: {len(parts)} share(s) for {len(variant_ids)} variants "
            f"({', '.join(variant_ids)}); give one percentage per variant, e.g. 50,50"
        )
    shares: list[float] = []
    for part, variant_id in zip(parts, variant_ids, strict=True):
        try:
            share = float(part)
        except ValueError:
            raise ExperimentError(
                f"{where}: share {part!r} of variant {variant_id!r} is not a number"
            ) from None
        if not 0 < share <= 100:
            raise ExperimentError(
                f"{where}: share {part!r} of variant {variant_id!r} must be above 0 and at "
                "most 100 percent"
            )
        shares.append(share)
    total = math.fsum(shares)
    if total > 100 + 1e-9:
        raise ExperimentError(f"{where}: shares add up to {_number(total)}, more than 100 percent")
    return tuple(s / total for s in shares), min(total / 100, 1.0)


@dataclass(frozen=True)
class Experiment:
    """An experiment: its variants, how visitors are split and which conversion it judges.

    Attributes:
        experiment_id: the experiment's id; also the hash seed unless ``seed`` is given.
        variants: two or more variants with distinct ids.
        weights: each variant's share of the visitors in the experiment (default: equal).
        coverage: the share of all visitors in the experiment, in (0, 1].
        conversion: the key conversion's event type.
        control: the variant the others are compared with (default: the first).
        seed: the hash seed (default: ``experiment_id``), as GrowthBook's ``seed``.
    """

    experiment_id: str
    variants: tuple[Variant, ...]
    weights: tuple[float, ...] = ()
    coverage: float = 1.0
    conversion: str = "purchase"
    control: str = ""
    seed: str = ""

    def __post_init__(self) -> None:
        _check_id(self.experiment_id, "experiment id")
        where = f"experiment {self.experiment_id!r}"
        ids = tuple(v.variant_id for v in self.variants)
        if len(ids) < 2:
            raise ExperimentError(f"{where}: needs at least two variants, got {len(ids)}")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ExperimentError(f"{where}: variant id(s) given twice: {', '.join(duplicates)}")
        weights = self.weights or tuple(1 / len(ids) for _ in ids)
        if len(weights) != len(ids):
            raise ExperimentError(f"{where}: {len(weights)} weights for {len(ids)} variants")
        if any(not w > 0 for w in weights) or not math.isclose(math.fsum(weights), 1.0):
            raise ExperimentError(f"{where}: weights must be positive and add up to 1")
        if not 0 < self.coverage <= 1:
            raise ExperimentError(f"{where}: coverage must be in (0, 1], got {self.coverage}")
        _check_id(self.conversion, "conversion event type")
        control = self.control or ids[0]
        if control not in ids:
            raise ExperimentError(
                f"{where}: control {control!r} is not one of its variants ({', '.join(ids)})"
            )
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        object.__setattr__(self, "control", control)
        object.__setattr__(self, "seed", self.seed or self.experiment_id)

    @property
    def variant_ids(self) -> tuple[str, ...]:
        """The variants' ids, in order."""
        return tuple(v.variant_id for v in self.variants)

    @classmethod
    def from_cli(
        cls,
        experiment_id: str,
        variants: Sequence[str],
        traffic: str | None = None,
        *,
        conversion: str = "purchase",
        control: str | None = None,
    ) -> Experiment:
        """An experiment from the command-line form.

        Args:
            experiment_id: the experiment's id.
            variants: the ``--variant`` values, ``ID=SPEC`` each.
            traffic: the ``--traffic`` value (percent per variant); ``None`` splits all
                visitors evenly.
            conversion: the key conversion's event type.
            control: the control variant's id (default: the first variant).

        Raises:
            ExperimentError: naming the option value at fault.
        """
        parsed = tuple(Variant.parse(v) for v in variants)
        weights: tuple[float, ...] = ()
        coverage = 1.0
        if traffic is not None:
            weights, coverage = parse_traffic(traffic, [v.variant_id for v in parsed])
        return cls(experiment_id, parsed, weights, coverage, conversion, control or "")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form; :meth:`from_dict` reads it back."""
        return {
            "experiment_id": self.experiment_id,
            "variants": [{"variant_id": v.variant_id, "spec": v.spec} for v in self.variants],
            "weights": list(self.weights),
            "coverage": self.coverage,
            "conversion": self.conversion,
            "control": self.control,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """The experiment :meth:`as_dict` described.

        Raises:
            ExperimentError: for a missing or invalid field.
        """
        try:
            variants = tuple(
                Variant.parse(f"{v['variant_id']}={v['spec']}") for v in data["variants"]
            )
            return cls(
                str(data["experiment_id"]),
                variants,
                tuple(float(w) for w in data["weights"]),
                float(data["coverage"]),
                str(data["conversion"]),
                str(data["control"]),
                str(data["seed"]),
            )
        except (KeyError, TypeError) as exc:
            raise ExperimentError(
                f"experiment definition: missing or invalid field {exc}"
            ) from None
