"""Experiments kept in the store (table ``experiments``): create, list, look up and stop.

The definition is stored as :meth:`Experiment.as_dict` JSON; an experiment is ``running`` from
its creation until it is stopped. Ids are never reused, even after a stop, so exposures and
impressions of an old experiment never mix with a new one's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from target_personalize.engine.experiments.definition import Experiment
from target_personalize.engine.experiments.errors import ExperimentError

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = ["ExperimentRegistry", "Status", "StoredExperiment"]

Status = Literal["running", "stopped"]
_COLUMNS = "experiment_id, definition, status, created_at, stopped_at"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class StoredExperiment:
    """An experiment as the store holds it (times are naive UTC)."""

    experiment: Experiment
    status: Status
    created_at: datetime
    stopped_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The definition plus ``status``, ``created_at`` and ``stopped_at`` (ISO strings)."""
        return {
            **self.experiment.as_dict(),
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "stopped_at": None if self.stopped_at is None else self.stopped_at.isoformat(),
        }


def _stored(row: tuple[Any, ...]) -> StoredExperiment:
    definition = row[1] if isinstance(row[1], dict) else json.loads(row[1])
    return StoredExperiment(Experiment.from_dict(definition), row[2], row[3], row[4])


class ExperimentRegistry:
    """The experiments of one store.

    Args:
        store: the event store holding the ``experiments`` table.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def create(self, experiment: Experiment) -> StoredExperiment:
        """Store a new, running experiment.

        Raises:
            ExperimentError: when an experiment with this id exists (running or stopped).
        """
        created = _now()
        with self.store.writing() as backend:
            if backend.execute(
                "SELECT 1 FROM experiments WHERE experiment_id = %s", [experiment.experiment_id]
            ):
                raise ExperimentError(
                    f"experiment {experiment.experiment_id!r} exists already; ids are never "
                    "reused, choose another (see `personalize experiment list`)"
                )
            backend.execute(
                f"INSERT INTO experiments ({_COLUMNS}) VALUES (%s, %s, 'running', %s, NULL)",
                [experiment.experiment_id, json.dumps(experiment.as_dict()), created],
            )
        return StoredExperiment(experiment, "running", created, None)

    def get(self, experiment_id: str) -> StoredExperiment:
        """The stored experiment with this id.

        Raises:
            ExperimentError: when there is none.
        """
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM experiments WHERE experiment_id = %s", [experiment_id]
        )
        if not rows:
            raise ExperimentError(
                f"no experiment {experiment_id!r} in the store; create it with `personalize "
                "experiment create` or list them with `personalize experiment list`"
            )
        return _stored(rows[0])

    def list(self, status: Status | None = None) -> list[StoredExperiment]:
        """Every stored experiment (or those with ``status``), the newest first."""
        where, params = ("WHERE status = %s", [status]) if status else ("", [])
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM experiments {where} ORDER BY created_at DESC, experiment_id",
            params,
        )
        return [_stored(row) for row in rows]

    def stop(self, experiment_id: str) -> StoredExperiment:
        """Stop a running experiment (stopping a stopped one changes nothing).

        Raises:
            ExperimentError: when there is no such experiment.
        """
        self.get(experiment_id)
        with self.store.writing() as backend:
            backend.execute(
                "UPDATE experiments SET status = 'stopped', stopped_at = %s "
                "WHERE experiment_id = %s AND status = 'running'",
                [_now(), experiment_id],
            )
        return self.get(experiment_id)
