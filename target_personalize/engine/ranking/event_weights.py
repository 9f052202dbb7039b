"""How much each event type says about a visitor's interest: funnel weights and defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from target_personalize.engine.exceptions import RankerError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "CART_TYPES",
    "DEFAULT_EVENT_WEIGHTS",
    "UNKNOWN_EVENT_WEIGHT",
    "kind_weights",
    "resolve_event_weights",
]

#: Event weights used when funnel mining has not supplied any (key conversion = 1.0).
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "page_view": 0.05,
    "engagement": 0.05,
    "remove_from_cart": 0.05,
    "category_view": 0.1,
    "search": 0.1,
    "filter": 0.1,
    "product_view": 0.2,
    "view": 0.2,
    "click": 0.2,
    "review_view": 0.3,
    "media_progress": 0.3,
    "add_to_wishlist": 0.4,
    "message": 0.4,
    "follow": 0.5,
    "add_to_cart": 0.6,
    "cart": 0.6,
    "begin_checkout": 0.8,
    "purchase": 1.0,
    "booking": 1.0,
}
#: Weight of an event type that neither the funnel nor the defaults know.
UNKNOWN_EVENT_WEIGHT = 0.2
#: Event types counted as "added to cart" by the conversion objective and the evaluation.
CART_TYPES = frozenset({"add_to_cart", "cart"})


def resolve_event_weights(
    event_weights: Mapping[str, float] | None, key_conversion: str | None
) -> tuple[dict[str, float], str]:
    """The full weight table and the key conversion, from what a fit was given.

    Types ``event_weights`` lacks keep :data:`DEFAULT_EVENT_WEIGHTS`; the key conversion is
    the given one, else the type weighted highest (``purchase`` on a tie or when none is
    given), and weighs 1.0.

    Raises:
        RankerError: if a weight is outside [0, 1].
    """
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for name, weight in (event_weights or {}).items():
        if not 0.0 <= float(weight) <= 1.0:
            raise RankerError(f"event weight of {name!r} must be in [0, 1], got {weight!r}")
        weights[name] = float(weight)
    if key_conversion is None:
        given = dict(event_weights or {})
        top = max(given.values(), default=None)
        best = sorted(name for name, weight in given.items() if weight == top)
        key_conversion = "purchase" if not best or "purchase" in best else best[0]
    weights[key_conversion] = 1.0
    return weights, key_conversion


def kind_weights(
    event_types: Iterable[str], weights: Mapping[str, float]
) -> npt.NDArray[np.float64]:
    """The weight of each event type index (one 0 slot when there are no types)."""
    return np.array(
        [weights.get(t, UNKNOWN_EVENT_WEIGHT) for t in event_types] or [0.0], dtype=np.float64
    )
