"""Compressed session and item indexes (CSR arrays) shared by the session-kNN rankers.

Only numpy: every structure is a few flat arrays whose size is proportional to events, sessions
and items, and every query is a handful of vectorised gathers and ``bincount`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import FloatArray, IntArray

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import Interactions

__all__ = ["CoOccurrence", "SessionIndex", "concat_ranges", "sequence_rules", "top_k"]


def concat_ranges(starts: IntArray, ends: IntArray) -> IntArray:
    """``np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])``, vectorised."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return offsets + np.arange(total, dtype=np.int64)


def top_k(scores: FloatArray, k: int, mask: npt.NDArray[np.bool_] | None = None) -> IntArray:
    """Indexes of the ``k`` best positive scores, best first; ties go to the lower index.

    Args:
        scores: one score per item.
        k: how many.
        mask: only items marked here.

    Returns:
        Item indexes (fewer than ``k`` when fewer items have a positive score).
    """
    values = scores if mask is None else np.where(mask, scores, 0.0)
    if k <= 0 or values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if values.size > k:
        # The k-th largest value: everything strictly above it is in, ties by index.
        kth = float(np.partition(values, values.size - k)[values.size - k])
        if kth > 0:
            above = np.flatnonzero(values > kth)
            tied = np.flatnonzero(values == kth)[: k - above.size]
            candidates = np.concatenate([above, tied])
        else:
            candidates = np.flatnonzero(values > 0)
    else:
        candidates = np.flatnonzero(values > 0)
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order].astype(np.int64)


@dataclass(frozen=True, eq=False)
class SessionIndex:
    """Training sessions numbered by end time (0 = oldest), with both CSR directions.

    Attributes:
        n_items: size of the item vocabulary.
        session_of: original session index per position.
        end: last event time per position.
        visitor: visitor index per position.
        seq_ptr: CSR offsets of each session's event sequence.
        seq_item: item per event, in time order.
        seq_kind: event type per event.
        seq_ts: event time per event.
        u_ptr: CSR offsets of each session's distinct items.
        u_item: distinct items per session (sorted by item).
        u_last: last (1-based) position of the item in the session's sequence.
        u_kind: strongest event type of the item in the session (by ``kind_rank``).
        i_ptr: CSR offsets of each item's sessions.
        i_sess: sessions (positions, ascending = older first) per item.
        i_u: index into the ``u_*`` arrays for each (item, session) entry.
    """

    n_items: int
    session_of: IntArray
    end: FloatArray
    visitor: IntArray
    seq_ptr: IntArray
    seq_item: IntArray
    seq_kind: IntArray
    seq_ts: FloatArray
    u_ptr: IntArray
    u_item: IntArray
    u_last: IntArray
    u_kind: IntArray
    i_ptr: IntArray
    i_sess: IntArray
    i_u: IntArray

    @property
    def n_sessions(self) -> int:
        """Number of indexed sessions."""
        return int(self.end.size)

    @property
    def u_len(self) -> IntArray:
        """Distinct items per session."""
        return np.diff(self.u_ptr)

    @classmethod
    def build(
        cls,
        data: Interactions,
        *,
        kind_rank: FloatArray | None = None,
        kinds: npt.NDArray[np.bool_] | None = None,
    ) -> SessionIndex:
        """Index ``data`` (sorted by session and time, as :class:`Interactions` keeps it).

        Args:
            data: the interactions.
            kind_rank: a strength per event type; ``u_kind`` keeps the strongest type.
            kinds: only rows of the event types marked here.

        Returns:
            The index.
        """
        n_items = len(data.items)
        rows = np.arange(len(data), dtype=np.int64)
        if kinds is not None:
            rows = rows[kinds[data.kind]]
        session = data.session[rows].astype(np.int64)
        sessions, first = np.unique(session, return_index=True)
        last = np.concatenate((first[1:], [session.size])) - 1 if session.size else first
        end = data.ts[rows][last] if session.size else np.zeros(0)
        order = np.lexsort((sessions, end))  # oldest first; ties by session index
        position = np.empty(sessions.size, dtype=np.int64)
        position[order] = np.arange(sessions.size)
        # Sequences in position order (rows of one session stay in time order).
        seq_session = position[np.searchsorted(sessions, session)]
        seq_order = np.argsort(seq_session, kind="stable")
        seq_session = seq_session[seq_order]
        seq_rows = rows[seq_order]
        seq_item = data.item[seq_rows].astype(np.int64)
        seq_kind = data.kind[seq_rows].astype(np.int64)
        seq_ts = data.ts[seq_rows]
        seq_ptr = np.concatenate(
            ([0], np.cumsum(np.bincount(seq_session, minlength=sessions.size)))
        )
        seq_pos = np.arange(seq_item.size) - seq_ptr[seq_session] + 1
        # Distinct items per session, with last position and strongest event type.
        strength = (
            np.zeros(max(len(data.event_types), 1))
            if kind_rank is None
            else np.asarray(kind_rank, dtype=np.float64)
        )
        u_session, u_item, u_last, u_kind = _distinct_items(
            seq_session, seq_item, seq_kind, seq_pos, strength
        )
        u_ptr = np.concatenate(([0], np.cumsum(np.bincount(u_session, minlength=sessions.size))))
        # Items -> sessions, sessions ascending within each item.
        by_item = np.argsort(u_item, kind="stable")
        i_ptr = np.concatenate(([0], np.cumsum(np.bincount(u_item, minlength=n_items))))
        return cls(
            n_items=n_items,
            session_of=sessions[order].astype(np.int64),
            end=end[order] if end.size else np.zeros(0),
            visitor=data.session_visitor[sessions[order]].astype(np.int64),
            seq_ptr=seq_ptr.astype(np.int64),
            seq_item=seq_item,
            seq_kind=seq_kind,
            seq_ts=seq_ts,
            u_ptr=u_ptr.astype(np.int64),
            u_item=u_item.astype(np.int64),
            u_last=u_last.astype(np.int64),
            u_kind=u_kind.astype(np.int64),
            i_ptr=i_ptr.astype(np.int64),
            i_sess=u_session[by_item].astype(np.int64),
            i_u=by_item.astype(np.int64),
        )

    def postings(self, items: IntArray, latest: int = 0) -> tuple[IntArray, IntArray, IntArray]:
        """(session, query entry, ``u_*`` index) for every session holding one of ``items``.

        Args:
            items: the query's items (-1 and unknown indexes are skipped).
            latest: when positive, only each item's ``latest`` most recent sessions. The
                ``latest`` most recent sessions of the union are always among them, so
                "most recent" sampling gives the same sample.

        Returns:
            Parallel arrays, one entry per (session, item) pair.
        """
        valid = (items >= 0) & (items < self.n_items)
        entries = np.flatnonzero(valid)
        starts = self.i_ptr[items[entries]]
        ends = self.i_ptr[items[entries] + 1]
        if latest > 0:
            starts = np.maximum(starts, ends - latest)
        at = concat_ranges(starts, ends)
        owner = np.repeat(entries, ends - starts)
        return self.i_sess[at], owner, self.i_u[at]

    def session_entries(self, sessions: IntArray) -> tuple[IntArray, IntArray]:
        """(``u_*`` indexes, neighbour number) for the distinct items of ``sessions``."""
        starts = self.u_ptr[sessions]
        ends = self.u_ptr[sessions + 1]
        return concat_ranges(starts, ends), np.repeat(np.arange(sessions.size), ends - starts)


def _distinct_items(
    seq_session: IntArray,
    seq_item: IntArray,
    seq_kind: IntArray,
    seq_pos: IntArray,
    strength: FloatArray,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Distinct items per session: session, item, last position, strongest event type."""
    pair_order = np.lexsort((seq_pos, seq_item, seq_session))
    ps, pi = seq_session[pair_order], seq_item[pair_order]
    new_pair = np.ones(ps.size, dtype=np.bool_)
    if ps.size:
        new_pair[1:] = (ps[1:] != ps[:-1]) | (pi[1:] != pi[:-1])
    starts = np.flatnonzero(new_pair)
    ends = np.concatenate((starts[1:], [ps.size])) - 1 if ps.size else starts
    u_session = ps[starts]
    u_item = pi[starts]
    u_last = seq_pos[pair_order][ends] if ps.size else np.zeros(0, dtype=np.int64)
    kinds_sorted = seq_kind[pair_order]
    if ps.size:
        best = np.maximum.reduceat(strength[kinds_sorted], starts)
        # The first type reaching the best strength, per pair.
        hit = strength[kinds_sorted] == np.repeat(best, np.diff(np.append(starts, ps.size)))
        group = np.repeat(np.arange(starts.size), np.diff(np.append(starts, ps.size)))
        first_hit = np.full(starts.size, -1, dtype=np.int64)
        idx = np.flatnonzero(hit)
        first_hit[group[idx][::-1]] = idx[::-1]
        u_kind = kinds_sorted[first_hit]
    else:
        u_kind = np.zeros(0, dtype=np.int64)
    return u_session, u_item, u_last, u_kind


@dataclass(frozen=True, eq=False)
class CoOccurrence:
    """A sparse item-to-item matrix in CSR form, rows pruned to their strongest entries."""

    ptr: IntArray
    col: IntArray
    val: FloatArray

    @classmethod
    def build(
        cls,
        n_items: int,
        rows: IntArray,
        cols: IntArray,
        weights: FloatArray,
        *,
        keep: int | None = None,
    ) -> CoOccurrence:
        """Sum duplicate (row, col) weights and keep the ``keep`` largest per row."""
        if rows.size == 0:
            return cls(np.zeros(n_items + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0))
        key = rows.astype(np.int64) * n_items + cols.astype(np.int64)
        uniq, inverse = np.unique(key, return_inverse=True)
        val = np.bincount(inverse.ravel(), weights=weights).astype(np.float64, copy=False)
        summed = [uniq, val]
        del uniq, val, inverse, key
        return cls._summed(n_items, summed, keep)

    @classmethod
    def _summed(
        cls, n_items: int, summed: list[npt.NDArray[Any]], keep: int | None
    ) -> CoOccurrence:
        """The matrix of distinct keys ``row * n_items + col`` (sorted) and their sums.

        ``summed`` is ``[keys, sums]``, emptied here so that the caller holds no reference
        and each array is freed once reordered. One array of keys is reordered rather than
        rows and columns apart (this holds the fit's peak at a few arrays per distinct pair).
        """
        uniq: IntArray = summed[0]
        val: FloatArray = summed[1]
        summed.clear()
        if keep is not None:
            # By row, value descending; keys are sorted, so ties keep the column order.
            order = np.lexsort((-val, uniq // n_items))
            uniq, val = uniq[order], val[order]
            del order
            r = uniq // n_items
            ptr = np.concatenate(([0], np.cumsum(np.bincount(r, minlength=n_items))))
            kept = np.arange(r.size) - ptr[r] < keep
            del r
            uniq, val = uniq[kept], val[kept]
        r = uniq // n_items
        ptr = np.concatenate(([0], np.cumsum(np.bincount(r, minlength=n_items))))
        del r
        return cls(ptr.astype(np.int64), (uniq % n_items).astype(np.int64), val)

    def scores(self, items: IntArray, weights: FloatArray, n_items: int) -> FloatArray:
        """Weighted sum of the rows of ``items``, as a dense vector."""
        valid = (items >= 0) & (items < self.ptr.size - 1)
        items, weights = items[valid], weights[valid]
        starts, ends = self.ptr[items], self.ptr[items + 1]
        at = concat_ranges(starts, ends)
        w = np.repeat(weights, ends - starts) * self.val[at]
        return np.bincount(self.col[at], weights=w, minlength=n_items).astype(np.float64)

    def sparse_scores(self, items: IntArray, weights: FloatArray) -> tuple[IntArray, FloatArray]:
        """Like :meth:`scores`, as (distinct columns, summed weights)."""
        valid = (items >= 0) & (items < self.ptr.size - 1)
        items, weights = items[valid], weights[valid]
        starts, ends = self.ptr[items], self.ptr[items + 1]
        at = concat_ranges(starts, ends)
        w = np.repeat(weights, ends - starts) * self.val[at]
        columns, inverse = np.unique(self.col[at], return_inverse=True)
        return columns.astype(np.int64), np.bincount(inverse, weights=w).astype(np.float64)

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[np.generic]]:
        """The matrix as named arrays."""
        return {f"{prefix}_ptr": self.ptr, f"{prefix}_col": self.col, f"{prefix}_val": self.val}


def sequence_rules(
    seq_ptr: IntArray, seq_item: IntArray, max_gap: int, *, n_items: int, keep: int
) -> CoOccurrence:
    """Sequential rules: item-to-item transitions within sessions, ``1/gap`` summed per pair.

    Every (earlier item, later item) pair of a session with a gap up to ``max_gap`` counts;
    each item keeps its ``keep`` strongest rules. The pairs (several per event) are the fit's
    largest arrays, so each is held as one ``int64`` key and a small gap code, sorted once
    (stable), and summed with ``bincount`` in its original order (gap by gap, then by event):
    the same sums, to the bit, as three ``int64`` arrays through :meth:`CoOccurrence.build`.
    """
    n = seq_item.size
    session = np.repeat(np.arange(seq_ptr.size - 1), np.diff(seq_ptr))
    keys: list[IntArray] = []
    gaps: list[npt.NDArray[np.integer]] = []
    code = np.min_scalar_type(max_gap)
    for gap in range(1, max_gap + 1):
        if gap >= n:
            break
        idx = np.flatnonzero(session[:-gap] == session[gap:])
        keys.append(seq_item[idx].astype(np.int64) * n_items + seq_item[idx + gap])
        gaps.append(np.full(idx.size, gap, dtype=code))
    del session
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return CoOccurrence.build(n_items, empty, empty, np.zeros(0))
    key = np.concatenate(keys)
    keys.clear()
    order = np.argsort(key, kind="stable")
    key = key[order]
    weights = 1.0 / np.concatenate(gaps)[order].astype(np.float64)
    gaps.clear()
    del order
    new = np.ones(key.size, dtype=np.bool_)
    new[1:] = key[1:] != key[:-1]
    uniq = key[new]
    del key
    val = np.bincount(np.cumsum(new) - 1, weights=weights).astype(np.float64, copy=False)
    summed = [uniq, val]
    del uniq, val, new, weights
    return CoOccurrence._summed(n_items, summed, keep)
