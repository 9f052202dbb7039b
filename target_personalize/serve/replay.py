"""Replaying the journal into the store at start, so that no record can wedge it.

Segments are read in bounded chunks (:meth:`Journal.leftovers_of`); each chunk is loaded in one
transaction, and when that fails its records are loaded one by one, so a record the store
cannot take goes to ``rejects`` with its reason and the others are stored. Lines that cannot
be parsed or are too long go to ``rejects`` (their first bytes) and, whole, to the segment's
``rejected-events.<n>.jsonl`` beside the journal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from target_personalize.engine import EventStore, Reject
from target_personalize.serve.journal import Journal, Poison

__all__ = ["REPLAY_FACTOR", "replay_journal"]

logger = logging.getLogger(__name__)

#: A journal line may be this many times ``max_event_bytes`` (a stored record carries the
#: fields the server adds to what the client sent); a longer one is poison.
REPLAY_FACTOR = 4
_STREAM = "api"


def replay_journal(journal: Journal, store: EventStore, max_event_bytes: int) -> int:
    """Load the events of the journal's older segments into ``store``, then drop them.

    Returns how many events were stored; poison lines and records the store refuses go to
    its ``rejects``.
    """
    stored = 0
    for segment in journal.segments():
        if segment >= journal.current:
            continue
        loaded = rejected = 0
        for _, records, poison in journal.leftovers_of(segment, REPLAY_FACTOR * max_event_bytes):
            if poison:
                store.load_rows([], rejects=[_poison_reject(journal, item) for item in poison])
                rejected += len(poison)
            if records:
                done, refused = _load(store, records, journal.rejected_path(segment))
                loaded += done
                rejected += refused
        logger.info(
            "Replayed journal segment %d: %d events stored, %d rejected", segment, loaded, rejected
        )
        if rejected:
            logger.warning(
                "Journal segment %d had %d records that could not be stored: see the store's "
                "rejects and %s",
                segment,
                rejected,
                journal.rejected_path(segment),
            )
        journal.drop(segment)
        stored += loaded
    return stored


def _load(store: EventStore, records: list[dict[str, Any]], keep: Path) -> tuple[int, int]:
    """Load a chunk in one transaction, else record by record; (stored, rejected).

    Any error of the database (out of memory on one huge record, a value it refuses) sends
    the record at fault to ``rejects``, and whole to the file ``keep``. If the store cannot even take the reject, the error
    propagates: the server does not start and the segment stays on disk.
    """
    try:
        result = store.load_events(records, stream=_STREAM)
    except Exception as error:
        logger.warning("Replaying %d events one by one: %s", len(records), error)
    else:
        return result.loaded, len(result.rejects)
    loaded = rejected = 0
    for record in records:
        try:
            result = store.load_events([record], stream=_STREAM)
        except Exception as error:
            with keep.open("ab") as handle:
                handle.write(msgspec.json.encode(record) + b"\n")
            store.load_rows([], rejects=[_refused(record, error)])
            rejected += 1
        else:
            loaded += result.loaded
            rejected += len(result.rejects)
    return loaded, rejected


def _refused(record: Mapping[str, Any], error: Exception) -> Reject:
    key = f"{record.get('source')}:{record.get('event_id')}"
    reason = f"the store refused it on replay: {type(error).__name__}: {str(error)[:500]}"
    return Reject(_STREAM, key, "event", reason, {"source": record.get("source"), "key": key})


def _poison_reject(journal: Journal, poison: Poison) -> Reject:
    where = f"{journal.rejected_path(poison.segment).name}, line {poison.line}"
    return Reject(
        _STREAM,
        where,
        "event",
        poison.reason,
        {"journal_line": where, "bytes": poison.size, "head": poison.head},
    )
