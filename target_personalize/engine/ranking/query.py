"""What a ranker knows at the moment of a request: the session and the visitor's history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import FloatArray, IntArray

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import Interactions
    from target_personalize.engine.ranking.live import LiveSession

__all__ = ["Query", "SessionHistory", "find_sorted"]


@dataclass(frozen=True, eq=False)
class Query:
    """What a ranker knows at the moment of a request.

    Attributes:
        items: items of the current session, in order (may repeat; -1 never appears).
        kinds: event type index per session event.
        ts: time per session event.
        history_items: items of the visitor's earlier sessions, oldest first.
        history_kinds: event type per history event.
        history_ts: time per history event.
        now: the request time (the last event time when known).
        categories: category indexes the session showed (including item-less events).
        brands: brand indexes the session showed.
        words: search words of the session.
    """

    items: IntArray
    kinds: IntArray
    ts: FloatArray
    history_items: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    history_kinds: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    history_ts: FloatArray = field(default_factory=lambda: np.zeros(0))
    now: float = math.nan
    categories: tuple[int, ...] = ()
    brands: tuple[int, ...] = ()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the query holds no items at all."""
        return self.items.size == 0 and self.history_items.size == 0


def find_sorted(sorted_keys: npt.NDArray[np.str_], key: str) -> int:
    """The position of ``key`` in a sorted string array, or -1."""
    # A key longer than the array's strings is not there; searching for it would copy the
    # whole array to a wider string type first.
    if sorted_keys.size == 0 or len(key) > sorted_keys.dtype.itemsize // 4:
        return -1
    at = int(np.searchsorted(sorted_keys, key))
    return at if at < sorted_keys.size and sorted_keys[at] == key else -1


class SessionHistory:
    """The training sessions of each visitor, to answer for a stored session or a known user.

    Args:
        data: the training interactions (sorted by session).
        history_sessions: how many earlier sessions of a visitor count as history.
        now: the time of a request that gives no event time (the end of the training data).
    """

    def __init__(self, data: Interactions, history_sessions: int, now: float) -> None:
        self.data = data
        self.history_sessions = history_sessions
        self.now = now
        self._session_end = data.session_end_times()
        order = np.argsort(data.session_visitor, kind="stable")
        self._visitor_sessions = order.astype(np.int64)
        self._visitor_ptr = np.concatenate(
            ([0], np.cumsum(np.bincount(data.session_visitor, minlength=data.visitors.size)))
        ).astype(np.int64)

    def session_rows(self, session: int) -> IntArray:
        """The rows of one training session."""
        data = self.data
        # A needle of the array's own type: a Python int would copy the array to int64.
        needle = data.session.dtype.type(session)
        start = int(np.searchsorted(data.session, needle, side="left"))
        end = int(np.searchsorted(data.session, needle, side="right"))
        return np.arange(start, end, dtype=np.int64)

    def history_rows(self, visitor: str, exclude: int = -1) -> IntArray:
        """Rows of the visitor's last ``history_sessions`` training sessions, oldest first."""
        at = find_sorted(self.data.visitors, visitor)
        if at < 0 or self.history_sessions <= 0:
            return np.zeros(0, dtype=np.int64)
        sessions = self._visitor_sessions[self._visitor_ptr[at] : self._visitor_ptr[at + 1]]
        sessions = sessions[sessions != exclude]
        if sessions.size == 0:
            return np.zeros(0, dtype=np.int64)
        ends = self._session_end[sessions]
        sessions = sessions[np.argsort(ends, kind="stable")][-self.history_sessions :]
        return np.concatenate([self.session_rows(int(s)) for s in sessions])

    def query(
        self,
        user_id: str | None,
        session_id: str | None,
        live: LiveSession | None,
        *,
        categories: tuple[int, ...] = (),
        brands: tuple[int, ...] = (),
    ) -> Query:
        """The query for a request.

        Args:
            user_id: the user asked for, if any.
            session_id: the session asked for, if any.
            live: the live session of the request (``session_id``'s, else the user's).
            categories: category codes the live session showed without items.
            brands: brand codes the live session showed without items.

        Returns:
            The current session (live, else stored, else a known user's latest) and the
            visitor's history.
        """
        data = self.data
        session_rows = np.zeros(0, dtype=np.int64)
        visitor = user_id
        current_session: int = -1
        if session_id is not None:
            # A live session's stored copy (a model refitted while serving) is the same
            # session: never its own history.
            current_session = find_sorted(data.session_keys, session_id)
            if live is None:
                if current_session >= 0:
                    session_rows = self.session_rows(current_session)
                    visitor = visitor or str(data.visitors[data.session_visitor[current_session]])
            elif visitor is None:
                visitor = live.visitor
        history = np.zeros(0, dtype=np.int64)
        if visitor is not None:
            history = self.history_rows(visitor, exclude=current_session)
            if live is None and session_id is None and history.size:
                # A known user without a live session: the latest session is the current one.
                last_session = int(data.session[history[-1]])
                session_rows = history[data.session[history] == last_session]
                history = history[data.session[history] != last_session]
        if live is not None:
            items = np.array(live.items, dtype=np.int64)
            kinds = np.array(live.kinds, dtype=np.int64)
            ts = np.array(live.ts, dtype=np.float64)
            words = tuple(live.words)
        else:
            items = data.item[session_rows].astype(np.int64)
            kinds = data.kind[session_rows].astype(np.int64)
            ts = data.ts[session_rows]
            categories, brands, words = (), (), ()
        now = (
            float(ts[-1])
            if ts.size
            else (float(data.ts[history[-1]]) if history.size else self.now)
        )
        return Query(
            items=items,
            kinds=kinds,
            ts=ts,
            history_items=data.item[history].astype(np.int64),
            history_kinds=data.kind[history].astype(np.int64),
            history_ts=data.ts[history],
            now=now,
            categories=categories,
            brands=brands,
            words=words,
        )
