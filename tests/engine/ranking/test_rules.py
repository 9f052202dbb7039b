"""Sequential rules built from packed pair keys (issue 15: the fit's peak memory)."""

from __future__ import annotations

import numpy as np

from target_personalize.engine.ranking.index import sequence_rules


def _reference(
    sessions: list[list[int]], max_gap: int, n_items: int, keep: int
) -> tuple[list[int], list[int], list[float]]:
    """Sums of ``1/gap`` per pair, gap by gap then event by event; rows by value, then column."""
    sums: dict[tuple[int, int], float] = {}
    flat = [(s, item) for s, items in enumerate(sessions) for item in items]
    for gap in range(1, max_gap + 1):
        for at in range(len(flat) - gap):
            if flat[at][0] == flat[at + gap][0]:
                pair = (flat[at][1], flat[at + gap][1])
                sums[pair] = sums.get(pair, 0.0) + 1.0 / gap
    ptr, col, val = [0], [], []
    for row in range(n_items):
        entries = sorted((-v, c) for (r, c), v in sums.items() if r == row)[:keep]
        col += [c for _, c in entries]
        val += [-v for v, _ in entries]
        ptr.append(len(col))
    return ptr, col, val


def test_sequence_rules_sum_to_the_bit_like_a_pair_by_pair_reference() -> None:
    rng = np.random.default_rng(0)
    n_items, max_gap, keep = 7, 4, 3
    sessions = [rng.integers(0, n_items, rng.integers(1, 9)).tolist() for _ in range(40)]
    seq_ptr = np.concatenate(([0], np.cumsum([len(s) for s in sessions])))
    seq_item = np.concatenate([np.array(s, dtype=np.int64) for s in sessions])

    rules = sequence_rules(seq_ptr, seq_item, max_gap, n_items=n_items, keep=keep)

    ptr, col, val = _reference(sessions, max_gap, n_items, keep)
    assert rules.ptr.tolist() == ptr
    assert rules.col.tolist() == col
    assert rules.val.tolist() == val  # exact: the same additions in the same order
    assert max(np.diff(rules.ptr)) == keep  # some rows were pruned


def test_sequence_rules_of_one_event_sessions_are_empty() -> None:
    rules = sequence_rules(np.array([0, 1, 2]), np.array([0, 1]), 3, n_items=2, keep=5)
    assert rules.ptr.tolist() == [0, 0, 0]
    assert rules.col.size == 0
