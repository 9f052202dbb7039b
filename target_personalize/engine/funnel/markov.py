"""A first-order Markov chain over event types, and the removal effect of each type.

The chain follows Anderl et al. (2016), with event types in the place of marketing channels:
every journey starts in a START state, moves through its event types (repeats collapsed, which
leaves absorption probabilities unchanged) and ends in one of two absorbing states, CONVERSION
or EXIT. The probability of conversion is the absorption probability into CONVERSION from
START. The *removal effect* of a type is the relative drop of that probability when the type
is removed, i.e. every journey that reaches it exits there:

    removal_effect(t) = 1 - P(conversion | t removed) / P(conversion)

The chain has one state per event type, so it is small; the absorption probabilities are solved
exactly with numpy (no simulation, nothing random).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["MarkovChain", "Transition", "fit_markov_chain"]

#: One observed transition: (source type or None for START, target type or None, kind, count),
#: kind being ``"step"``, ``"conversion"`` or ``"exit"``.
Transition = tuple[str | None, str | None, str, int]


@dataclass(frozen=True)
class MarkovChain:
    """The fitted chain: its states and each state's removal effect.

    Attributes:
        states: the event types, sorted.
        conversion_probability: P(CONVERSION) from START.
        removal_effects: event type -> removal effect in [0, 1].
    """

    states: tuple[str, ...]
    conversion_probability: float
    removal_effects: Mapping[str, float]


def _absorption(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve ``(I - Q) h = r``, the probability of conversion from every transient state."""
    system = np.eye(len(r)) - q
    try:
        return np.asarray(np.linalg.solve(system, r), dtype=float)
    except np.linalg.LinAlgError:
        # A closed loop without exit cannot come from finite journeys; stay safe anyway.
        solution, *_ = np.linalg.lstsq(system, r, rcond=None)
        return np.asarray(solution, dtype=float)


def fit_markov_chain(transitions: Iterable[Transition]) -> MarkovChain:
    """Fit the chain from transition counts and compute every type's removal effect.

    Args:
        transitions: observed transitions between collapsed event types. Self-transitions
            are ignored.

    Returns:
        The chain. With no conversion at all, the probability and all removal effects are 0.
    """
    rows = [t for t in transitions if not (t[2] == "step" and t[0] == t[1])]
    states = tuple(
        sorted(
            {t[0] for t in rows if t[0] is not None}
            | {t[1] for t in rows if t[1] is not None and t[2] == "step"}
        )
    )
    index = {state: i + 1 for i, state in enumerate(states)}  # 0 is START
    size = len(states) + 1
    counts = np.zeros((size, size))
    to_conversion = np.zeros(size)
    to_exit = np.zeros(size)
    for source, target, kind, count in rows:
        i = 0 if source is None else index[source]
        if kind == "conversion":
            to_conversion[i] += count
        elif kind == "exit":
            to_exit[i] += count
        elif target is not None:
            counts[i, index[target]] += count
    totals = counts.sum(axis=1) + to_conversion + to_exit
    safe = np.where(totals > 0, totals, 1.0)
    q = counts / safe[:, None]
    r = to_conversion / safe
    base = float(_absorption(q, r)[0]) if size else 0.0
    effects: dict[str, float] = {}
    for state, i in index.items():
        q_removed = q.copy()
        r_removed = r.copy()
        q_removed[i, :] = 0.0
        r_removed[i] = 0.0
        without = float(_absorption(q_removed, r_removed)[0])
        effect = (base - without) / base if base > 0 else 0.0
        effects[state] = min(1.0, max(0.0, effect))
    return MarkovChain(states, min(1.0, max(0.0, base)), effects)
