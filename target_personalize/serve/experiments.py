"""Experiments in serving: assign a visitor, answer with the variant's list, record it.

The running experiments are read from the store's ``experiments`` table at start and every
``RELOAD_SECONDS`` (and at once after a create or stop over HTTP), so ``personalize experiment
create`` / ``stop`` take effect in a running server. A request names its experiment
(``experiment``), else the only running one applies; with several running and none named, no
experiment applies; ``experiment=-`` keeps a request outside every experiment (previews such as
the dashboard's: neither assigned nor recorded).

The visitor is ``user_id``, else ``anonymous_id``, else ``session_id`` (the readout's visitor
is ``user_id``, else ``anonymous_id``: send the id the events carry). The variant is
:func:`~target_personalize.engine.experiments.assign` (GrowthBook's hash v2), so it is the
same on every request, server and restart. A variant ranks with:

* ``engine``: the served model (objectives: the request's, else the server's default);
* ``objectives:...``: the served model with the variant's weights;
* ``popularity`` / ``views_only``: :class:`MostPopular` / :class:`ViewsItemKNN` fitted on the
  served model's interactions (refitted when the model is refreshed), relevance alone;
* ``none``: the shop's own order: ``/v1/rank`` answers the candidates as given (with the
  engine's scores), ``/v1/recommendations`` an empty list (a hold-out).

Every list served in an experiment gets a random URL-safe ``rec_id`` and is recorded as an
impression, plus an exposure once per visitor, experiment and UTC day (:mod:`served_log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from target_personalize.engine import Objectives, RankerBase
from target_personalize.engine.experiments import Experiment, Variant, assign
from target_personalize.engine.experiments.registry import ExperimentRegistry, StoredExperiment
from target_personalize.engine.ranking.baselines import MostPopular, ViewsItemKNN
from target_personalize.engine.ranking.contract import ScoredItem
from target_personalize.engine.store.served import Exposure, Impression, exposure_key
from target_personalize.serve.served_log import ServedLog, in_store
from target_personalize.serve.service import ServingState

__all__ = ["OUTSIDE", "RELOAD_SECONDS", "Assignment", "ExperimentLab", "new_rec_id", "visitor_of"]

logger = logging.getLogger(__name__)

#: The ``experiment`` value that keeps a request outside every experiment (not a valid id).
OUTSIDE = "-"
#: How often the running experiments are read from the store again.
RELOAD_SECONDS = 5.0
#: Exposure keys remembered, so a visitor's exposure is journaled once a day.
_RECENT_EXPOSURES = 500_000
_BASELINES: dict[str, type[RankerBase]] = {"popularity": MostPopular, "views_only": ViewsItemKNN}


def new_rec_id() -> str:
    """A random, URL-safe id of a served list (128 bits)."""
    return secrets.token_urlsafe(16)


def visitor_of(user_id: str | None, anonymous_id: str | None, session_id: str | None) -> str | None:
    """The visitor a request is assigned by: user, else anonymous id, else session."""
    return user_id or anonymous_id or session_id or None


@dataclass(frozen=True)
class Assignment:
    """A request's place in an experiment."""

    experiment: Experiment
    variant: Variant
    visitor_id: str


class ExperimentLab:
    """The running experiments, their baseline rankers and the record of what was served.

    Event loop thread only, like the ranker.

    Args:
        serving: the server's state.
    """

    def __init__(self, serving: ServingState) -> None:
        self.serving = serving
        self.log = ServedLog(serving)
        self.running: dict[str, Experiment] = {}
        self._baselines: dict[str, RankerBase] = {}
        self._baselines_of: RankerBase | None = None
        self._exposed: OrderedDict[str, None] = OrderedDict()
        self._reloading: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()

    # Lifecycle

    async def start(self) -> None:
        """Replay the served journal, load the running experiments, reload them periodically."""
        await self.log.start()
        await self.reload()
        self._reloading = asyncio.create_task(self._reload_forever())

    async def close(self) -> None:
        """Stop reloading and write every served row."""
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        await self.log.close()

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                await self.reload()
            except Exception:
                logger.exception("Could not reload the experiments; serving the previous ones")

    async def reload(self) -> None:
        """Read the running experiments from the store; fit the baselines they need."""
        async with self._reload_lock:
            stored = await in_store(
                self.serving, lambda store: ExperimentRegistry(store).list("running")
            )
            running = {s.experiment.experiment_id: s.experiment for s in stored}
            await self._fit_baselines(running.values())
            self.running = running

    async def _fit_baselines(self, experiments: Iterable[Experiment]) -> None:
        needed = {v.ranker for e in experiments for v in e.variants if v.ranker in _BASELINES}
        model = self.serving.ranker
        # Requests go on meanwhile with the current baselines; the new set replaces them whole.
        fitted = dict(self._baselines) if model is self._baselines_of else {}
        for name in sorted(needed - set(fitted)):
            kind = _BASELINES[name]

            def fit(kind: type[RankerBase] = kind) -> RankerBase:
                return kind().fit(
                    model.data,
                    event_weights=model.event_weights,
                    key_conversion=model.key_conversion,
                )

            fitted[name] = await anyio.to_thread.run_sync(fit)
            logger.info("Fitted the %s baseline for the running experiments", name)
        self._baselines, self._baselines_of = fitted, model

    # HTTP operations on the registry

    async def create(self, experiment: Experiment) -> StoredExperiment:
        """Store a new running experiment and serve it at once."""
        stored = await in_store(
            self.serving, lambda store: ExperimentRegistry(store).create(experiment)
        )
        await self.reload()
        return stored

    async def stop(self, experiment_id: str) -> StoredExperiment:
        """Stop an experiment; its visitors get the default ranking at once."""
        stored = await in_store(
            self.serving, lambda store: ExperimentRegistry(store).stop(experiment_id)
        )
        await self.reload()
        return stored

    # Serving

    def assignment(
        self,
        experiment_id: str | None,
        user_id: str | None,
        anonymous_id: str | None,
        session_id: str | None,
    ) -> Assignment | None:
        """The request's variant, or ``None`` (no such running experiment, or not covered)."""
        if experiment_id == OUTSIDE:
            return None
        if experiment_id:
            experiment = self.running.get(experiment_id)
        elif len(self.running) == 1:
            experiment = next(iter(self.running.values()))
        else:
            experiment = None
        visitor = visitor_of(user_id, anonymous_id, session_id)
        if experiment is None or visitor is None:
            return None
        variant = assign(experiment, visitor)
        return None if variant is None else Assignment(experiment, variant, visitor)

    def _ranker(self, variant: Variant) -> tuple[RankerBase, Objectives | None]:
        if variant.ranker in _BASELINES:
            return self._baselines[variant.ranker], Objectives()
        return self.serving.ranker, variant.objectives

    def recommend(
        self,
        assigned: Assignment,
        user_id: str | None,
        session_id: str | None,
        k: int,
        *,
        exclude_seen: bool,
        filters: Mapping[str, Any],
        objectives: Objectives,
    ) -> tuple[list[ScoredItem], Objectives]:
        """The variant's recommendations and the objectives they were ranked with."""
        if assigned.variant.ranker == "none":
            return [], objectives
        ranker, fixed = self._ranker(assigned.variant)
        goals = objectives if fixed is None else fixed
        items = ranker.recommend(
            user_id, session_id, k, exclude_seen=exclude_seen, filters=filters, objectives=goals
        )
        return items, goals

    def rank(
        self,
        assigned: Assignment,
        candidates: Sequence[str],
        user_id: str | None,
        session_id: str | None,
        objectives: Objectives,
    ) -> tuple[list[ScoredItem], Objectives]:
        """The candidates in the variant's order (``none``: as given) and the objectives."""
        if assigned.variant.ranker == "none":
            scored = self.serving.ranker.rank(
                candidates, user_id, session_id, objectives=objectives
            )
            by_id = {item.item_id: item for item in scored}
            return [by_id[item_id] for item_id in candidates], objectives
        ranker, fixed = self._ranker(assigned.variant)
        goals = objectives if fixed is None else fixed
        return ranker.rank(candidates, user_id, session_id, objectives=goals), goals

    def observe(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Apply events to the baselines' live sessions too."""
        for ranker in self._baselines.values():
            for record in records:
                ranker.observe(record)

    async def served(
        self, assigned: Assignment, session_id: str | None, items: Sequence[ScoredItem]
    ) -> dict[str, Any]:
        """Record a served list (and the day's exposure); its ``rec_id`` and variant.

        Returns once the rows are durable (see :class:`ServedLog`).
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        experiment_id = assigned.experiment.experiment_id
        variant_id = assigned.variant.variant_id
        rec_id = new_rec_id()
        rows: list[Exposure | Impression] = []
        key = exposure_key(experiment_id, assigned.visitor_id, now)
        if key not in self._exposed:
            self._exposed[key] = None
            if len(self._exposed) > _RECENT_EXPOSURES:
                self._exposed.popitem(last=False)
            rows.append(Exposure(experiment_id, variant_id, assigned.visitor_id, now, session_id))
        item_ids = tuple(item.item_id for item in items)
        rows.append(
            Impression(
                rec_id, experiment_id, variant_id, assigned.visitor_id, session_id, now, item_ids
            )
        )
        try:
            await self.log.add(rows)
        except Exception:
            self._exposed.pop(key, None)  # recorded by the next list instead
            raise
        return {"rec_id": rec_id, "experiment_id": experiment_id, "variant_id": variant_id}
