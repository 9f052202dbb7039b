"""Where a fitted ranker lives next to its store, and the refresh after each load.

* A DuckDB file store ``path/name.duckdb`` keeps its ranker in ``path/name.ranker.npz`` (arrays)
  and ``path/name.ranker.json`` (description).
* Any other store (PostgreSQL, in-memory DuckDB) keeps it in its own table ``ranker_models``
  (one row per model name: the JSON description and the ``.npz`` bytes), so a pipeline without
  a persistent disk still finds it.

No pickle anywhere: arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.engine import make_url

from target_personalize.engine.exceptions import ModelFormatError
from target_personalize.engine.ranking.contract import RankerBase
from target_personalize.engine.ranking.objectives import Objectives
from target_personalize.engine.ranking.session_ranker import SessionRanker

if TYPE_CHECKING:
    from collections.abc import Mapping

    from target_personalize.engine.store.event_store import EventStore

__all__ = ["load_ranker", "model_path", "refresh_ranker", "save_ranker"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "ranker"
_TABLE = "ranker_models"


def model_path(database_url: str, name: str = DEFAULT_MODEL_NAME) -> Path | None:
    """The ``.npz`` file of model ``name`` beside a DuckDB file store, or ``None``.

    ``None`` means the store keeps its models in its ``ranker_models`` table.
    """
    if "://" not in database_url:
        database: str | None = database_url
    else:
        url = make_url(database_url)
        if url.get_backend_name() != "duckdb":
            return None
        database = url.database
    if not database or database == ":memory:":
        return None
    store_file = Path(database).expanduser()
    return store_file.with_name(f"{store_file.stem}.{name}.npz")


def save_ranker(ranker: RankerBase, store: EventStore, name: str = DEFAULT_MODEL_NAME) -> str:
    """Save ``ranker`` next to ``store``.

    Returns:
        Where it went (a file path, or ``table ranker_models``).
    """
    path = model_path(store.database_url, name)
    if path is not None:
        return str(ranker.save(path))
    meta, arrays = ranker.to_payload()
    buffer = io.BytesIO()
    savez: Any = np.savez
    savez(buffer, **arrays)
    blob = "BLOB" if store.dialect == "duckdb" else "BYTEA"
    store.query(
        f"CREATE TABLE IF NOT EXISTS {_TABLE} (name VARCHAR PRIMARY KEY, saved_at TIMESTAMP, "
        f"meta VARCHAR, arrays {blob})"
    )
    store.query(f"DELETE FROM {_TABLE} WHERE name = %s", [name])
    store.query(
        f"INSERT INTO {_TABLE} (name, saved_at, meta, arrays) VALUES (%s, %s, %s, %s)",
        [name, datetime.now(UTC).replace(tzinfo=None), json.dumps(meta), buffer.getvalue()],
    )
    return f"table {_TABLE}"


def load_ranker(store: EventStore, name: str = DEFAULT_MODEL_NAME) -> RankerBase | None:
    """The ranker saved next to ``store``, or ``None`` if there is none.

    Raises:
        ModelFormatError: if a saved model exists but cannot be read.
    """
    path = model_path(store.database_url, name)
    if path is not None:
        return RankerBase.load(path) if path.exists() else None
    exists = store.query(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = %s AND table_schema = current_schema()",
        [_TABLE],
    )
    if not exists or not exists[0][0]:
        return None
    rows = store.query(f"SELECT meta, arrays FROM {_TABLE} WHERE name = %s", [name])
    if not rows:
        return None
    meta, blob = rows[0]
    try:
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
        description = json.loads(meta)
    except (OSError, ValueError) as error:
        raise ModelFormatError(f"cannot read model {name!r} from {_TABLE}: {error}") from error
    return RankerBase.from_payload(description, arrays)


def refresh_ranker(
    store: EventStore,
    *,
    create: bool = False,
    event_weights: Mapping[str, float] | None = None,
    key_conversion: str | None = None,
    objectives: Objectives | Mapping[str, float] | None = None,
    train_window_days: float | None = None,
    name: str = DEFAULT_MODEL_NAME,
) -> RankerBase | None:
    """Bring the ranker saved next to ``store`` up to date with the store, and save it.

    The target calls this after each load (setting ``refresh_after_load``). An existing model
    is refitted incrementally (only sessions touched by the new loads are read); a changed key
    conversion or new event weights refit it fully. Without a saved model nothing happens,
    unless ``create`` is set, in which case a :class:`SessionRanker` is fitted and saved.

    Args:
        store: the event store.
        create: fit and save a new ranker when none is saved yet.
        event_weights: funnel event weights (a change triggers a full refit).
        key_conversion: the key conversion (a change triggers a full refit).
        objectives: default objective weights to save with the model.
        train_window_days: the training window, in days back from the latest event (a change
            triggers a full refit); ``None`` keeps the saved model's (a new one: every event).
        name: the model's name.

    Returns:
        The refreshed ranker, or ``None`` when there was none and ``create`` was not set.
    """
    ranker = load_ranker(store, name)
    if ranker is None:
        if not create:
            return None
        ranker = SessionRanker().fit(
            store,
            event_weights=event_weights,
            key_conversion=key_conversion,
            objectives=objectives,
            train_window_days=train_window_days,
        )
    else:
        weights_changed = event_weights is not None and any(
            ranker.event_weights.get(k) != float(v) for k, v in event_weights.items()
        )
        conversion_changed = key_conversion is not None and key_conversion != ranker.key_conversion
        window_changed = (
            train_window_days is not None and train_window_days != ranker.train_window_days
        )
        if weights_changed or conversion_changed or window_changed:
            ranker.fit(
                store,
                event_weights={**ranker.event_weights, **(event_weights or {})},
                key_conversion=key_conversion or ranker.key_conversion,
                objectives=objectives if objectives is not None else ranker.objectives,
                train_window_days=(
                    train_window_days if train_window_days is not None else ranker.train_window_days
                ),
            )
        else:
            before = (ranker.loaded_until, ranker.objectives)
            if objectives is not None:
                ranker.objectives = Objectives.parse(objectives)
            ranker.update(store)
            if (ranker.loaded_until, ranker.objectives) == before:
                return ranker  # nothing new: the saved model is this one
    where = save_ranker(ranker, store, name)
    logger.info("Saved the %s (%d item events) to %s", ranker.name, len(ranker.data), where)
    return ranker
