"""Train/test splits: by time (session-rec's protocol), a fixed split, per user."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.ranking.interactions import (
    Interactions,
    interactions_from_events,
    read_session_file,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["per_user_split", "prepare_fixed_split", "prepare_split", "read_split_file"]

_DAY = 86_400.0


def prepare_split(
    data: Interactions,
    *,
    cut: float | None = None,
    test_days: float = 1.0,
    min_item_support: int = 5,
    min_session_length: int = 2,
) -> tuple[Interactions, Interactions, float]:
    """Filter and split by time, session-rec style.

    Args:
        data: all interactions.
        cut: split time (epoch seconds); default: ``test_days`` before the last event, or,
            when the data covers less than twice ``test_days``, the time by which 80% of the
            sessions have ended.
        test_days: length of the test period.
        min_item_support: items with fewer events are dropped first.
        min_session_length: shorter sessions are dropped.

    Returns:
        (train, test, cut).
    """
    filtered = data.filter_support(min_item_support, min_session_length)
    if len(filtered) == 0:
        return filtered, filtered, math.nan
    if cut is None:
        first, last = float(filtered.ts.min()), float(filtered.ts.max())
        if last - first >= 2 * test_days * _DAY:
            cut = last - test_days * _DAY
        else:
            ends = filtered.session_end_times()
            cut = float(np.quantile(ends[np.isfinite(ends)], 0.8))
    train, test = filtered.split_by_time(cut)
    return train, _clean_test(train, test, min_session_length), cut


def prepare_fixed_split(
    train: Interactions, test: Interactions, *, min_session_length: int = 2
) -> tuple[Interactions, Interactions]:
    """Use a given split: test events on items unknown to training and short sessions go.

    ``test`` is re-indexed onto the training items.
    """
    return train, _clean_test(train, test.with_items(train.items), min_session_length)


def _clean_test(train: Interactions, test: Interactions, min_length: int) -> Interactions:
    known = np.bincount(train.item, minlength=len(train.items)) > 0
    kept = test.restrict_items(known)
    return kept._drop_short(min_length)


def read_split_file(path: str | Path, *, items: Any = None) -> Interactions:
    """Read one side of a fixed split: session-rec/YooChoose columns or canonical events.

    A first line naming ``SessionId``, ``ItemId`` and ``Time`` columns, separated by tabs,
    commas or semicolons, is session-rec's (and YooChoose's) format; a first line that opens a
    JSON object is canonical events, one per line.

    Raises:
        RankerError: for a file in neither format, or a line that is not JSON.
    """
    target = Path(path)
    with target.open(encoding="utf-8") as handle:
        first = handle.readline()
    for delimiter in ("\t", ",", ";"):
        if {"SessionId", "ItemId", "Time"} <= {c.strip() for c in first.split(delimiter)}:
            return read_session_file(target, items=items, delimiter=delimiter)
    if not first.lstrip().startswith("{"):
        raise RankerError(
            f"{target}: unknown format. Give session-rec/YooChoose columns (a header "
            "SessionId, ItemId, Time separated by tabs, commas or semicolons) or canonical "
            "events as JSON lines"
        )

    def records() -> Iterable[dict[str, Any]]:
        with target.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError as error:
                    raise RankerError(
                        f"{target}, line {number}: not a JSON event ({error}); canonical "
                        "events need one JSON object per line"
                    ) from None

    return interactions_from_events(records())


def per_user_split(
    data: Interactions, *, test_share: float = 0.2
) -> tuple[Interactions, Interactions]:
    """Hold out each returning visitor's latest sessions; everything else trains.

    For every visitor with two or more sessions, the last ones by end time (about
    ``test_share`` of them, at least one) go to test.

    Returns:
        (train, test).
    """
    ends = data.session_end_times()
    present = np.unique(data.session)
    visitor = data.session_visitor[present]
    order = np.lexsort((ends[present], visitor))
    sorted_sessions, sorted_visitors = present[order], visitor[order]
    counts = np.bincount(sorted_visitors, minlength=data.visitors.size)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_from_end = counts[sorted_visitors] - (
        np.arange(sorted_sessions.size) - first[sorted_visitors]
    )
    held = np.maximum(np.floor(counts * test_share), 1).astype(np.int64)
    in_test = (counts[sorted_visitors] >= 2) & (rank_from_end <= held[sorted_visitors])
    test_sessions = np.zeros(data.n_sessions, dtype=np.bool_)
    test_sessions[sorted_sessions[in_test]] = True
    rows = test_sessions[data.session]
    return data.take(~rows), data.take(rows)
