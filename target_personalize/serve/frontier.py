"""The dials' trade-off frontier for the dashboard, computed in the background per model.

``GET /v1/tradeoff`` answers what ``personalize tradeoff`` prints, for the model being served:
the grid of dial settings replayed on the held-out sessions of the data the model learnt
from (:func:`~target_personalize.engine.evaluation.tradeoff.tradeoff`). Replaying takes a
second on a small store, half a minute on the REES46 sample, so it never runs on a request's path nor
on the store's writer thread: a worker thread computes it from the served ranker's own
interactions (no store connection needed, so an in-memory store works too), started by the
first ``GET /v1/tradeoff`` (the dashboard asking) and from then on again after every model
swap: a server nobody asks spends no CPU on it. Until it is done the endpoint says
``computing``; a setting chosen later that is not on the grid (``PUT /v1/objectives``) is
added and the grid replayed again. One replay runs at a time, the latest wish next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from target_personalize.engine import Objectives, SessionRanker
from target_personalize.engine.evaluation.splits import prepare_split
from target_personalize.engine.evaluation.tradeoff import TradeoffReport, objective_grid, tradeoff

if TYPE_CHECKING:
    from target_personalize.engine import RankerBase
    from target_personalize.engine.ranking.interactions import Interactions

__all__ = ["DEFAULT_RANGES", "Frontier", "frontier_report"]

logger = logging.getLogger(__name__)

#: The dials swept by default: the dashboard's two sliders.
DEFAULT_RANGES = ("conversion=0..1", "margin=0..2")


def frontier_report(
    data: Interactions,
    settings: Sequence[Objectives],
    *,
    k: int,
    key_conversion: str,
    event_weights: dict[str, float],
) -> TradeoffReport | None:
    """The trade-off report of ``settings`` on a time split of ``data``.

    As ``personalize tradeoff`` computes it (a session ranker fitted on the split's training
    part, also when a re-ranker serves), with the served model's event weights and key
    conversion. ``None`` when the split leaves no held-out session to replay.
    """
    train, test, _ = prepare_split(data)
    if len(test) == 0 or len(train) == 0:
        return None
    return tradeoff(
        SessionRanker(random_state=0),
        train,
        test,
        settings,
        k=k,
        event_weights=event_weights,
        key_conversion=key_conversion,
    )


class Frontier:
    """The frontier of the served model: computed in a worker thread, answered as JSON.

    Args:
        ranges: ``NAME=LOW..HIGH`` dials to sweep (three steps each).
        k: list length.
    """

    def __init__(self, ranges: Sequence[str] = DEFAULT_RANGES, k: int = 20) -> None:
        self.grid = objective_grid(ranges)
        self.k = k
        self._state: tuple[str, TradeoffReport | str | None] = ("computing", None)
        self._computed_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._ranker: RankerBase | None = None  # the model computed for, and its settings
        self._settings: tuple[Objectives, ...] = ()
        self._wanted = False  # set by the first ask: nothing is computed before it

    def start(self, ranker: RankerBase) -> None:
        """The frontier is now that of ``ranker`` (event loop thread only).

        Once it has been asked for (:meth:`want`), it is computed in the background; the
        answer is ``computing`` until it is done. One computation runs at a time: asked for
        another model or grid meanwhile, the one under way finishes and the latest wish is
        computed next (so a burst of settings costs two replays, not one thread each).
        """
        settings = tuple(self.grid)
        if ranker.objectives not in settings:
            settings += (ranker.objectives,)
        if ranker is self._ranker and settings == self._settings:
            return
        self._ranker, self._settings = ranker, settings
        self._state = ("computing", None)
        self._spawn()

    def want(self) -> None:
        """Compute the frontier from now on: the first ask starts it."""
        self._wanted = True
        self._spawn()

    def _spawn(self) -> None:
        idle = self._task is None or self._task.done()
        if self._wanted and idle and self._state[0] == "computing":
            self._task = asyncio.get_running_loop().create_task(self._run())

    def follow(self, ranker: RankerBase) -> None:
        """Replay again if the current setting is not on the computed grid."""
        if self._ranker is not None and ranker.objectives not in self._settings:
            self.start(ranker)

    async def _run(self) -> None:
        while self._ranker is not None:
            ranker, settings = self._ranker, self._settings
            state = await self._compute(ranker, settings)
            if ranker is self._ranker and settings == self._settings:
                self._state = state
                return

    async def _compute(
        self, ranker: RankerBase, settings: tuple[Objectives, ...]
    ) -> tuple[str, TradeoffReport | str | None]:
        started = time.perf_counter()
        # Read on the event loop's thread, where the ranker changes: the thread gets a snapshot.
        data, weights, conversion = ranker.data, dict(ranker.event_weights), ranker.key_conversion
        try:
            report = await anyio.to_thread.run_sync(
                lambda: frontier_report(
                    data, settings, k=self.k, key_conversion=conversion, event_weights=weights
                ),
                abandon_on_cancel=True,
            )
        except Exception as error:  # a failed replay is reported, the server goes on
            logger.exception("Could not compute the trade-off frontier")
            return ("failed", f"the frontier could not be computed: {error}")
        self._computed_at = time.time()
        if report is None:
            return ("unavailable", _NO_TEST)
        logger.info(
            "Trade-off frontier: %d settings over %d predictions in %.1f s",
            len(settings),
            report.predictions,
            time.perf_counter() - started,
        )
        return ("ready", report)

    async def close(self) -> None:
        """Cancel a computation under way and wait for its task to end."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def answer(self, current: Objectives) -> tuple[int, dict[str, Any]]:
        """The HTTP status and body of ``GET /v1/tradeoff``, ``current`` marked.

        200 ``ready`` (the report), 202 ``computing``, 200 ``unavailable`` (no held-out
        sessions) or 500 ``failed``, each with a ``detail`` saying why when not ready.
        """
        status, found = self._state
        if status == "computing":
            detail = "the frontier is being computed for the served model: ask again shortly"
            return 202, {"status": status, "detail": detail}
        if not isinstance(found, TradeoffReport):
            return (500 if status == "failed" else 200), {"status": status, "detail": found}
        report = found
        body = report.as_dict()
        for point, shown in zip(report.points, body["points"], strict=True):
            shown["current"] = point.objectives == current
        body.update(
            status="ready",
            computed_at=self._computed_at,
            current=current.as_dict(),
            current_label=current.label(),
        )
        return 200, _finite(body)


_NO_TEST = (
    "no held-out sessions to replay: the frontier needs sessions after the split time that "
    "touch items seen at least 5 times before it (load more events)"
)


def _finite(value: Any) -> Any:
    """``value`` with NaN (a figure without data) as ``None``, which JSON can carry."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
