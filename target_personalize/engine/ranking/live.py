"""Live sessions: the events a serving ranker observed, answered at once without a refit."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from target_personalize.engine.ranking.interactions import to_epoch
from target_personalize.engine.ranking.words import TOKEN

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import ItemTable

__all__ = ["LiveSession", "LiveSessions"]


@dataclass
class LiveSession:
    """A session fed by observed events (mutable, in memory only).

    Attributes:
        visitor: the user (else anonymous) id, when known.
        items: item indexes of the session's events, in order; ``kinds`` and ``ts`` their
            event types and times.
        categories: category names the session showed without items (filters, pages).
        brands: brand names likewise.
        words: search words of the session (and of its category and brand filters).
    """

    visitor: str | None
    items: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


class LiveSessions:
    """The live sessions of a ranker, least recently observed first.

    Args:
        max_sessions: sessions kept (the least recently observed are dropped).
        max_events: events kept per session (older ones are forgotten).
    """

    def __init__(self, max_sessions: int, max_events: int) -> None:
        self.max_sessions = max_sessions
        self.max_events = max_events
        self._sessions: OrderedDict[str, LiveSession] = OrderedDict()
        self._by_visitor: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def of_request(self, user_id: str | None, session_id: str | None) -> LiveSession | None:
        """The live session of a request: ``session_id``'s, else the user's latest."""
        if session_id is not None:
            return self._sessions.get(session_id)
        if user_id is None:
            return None
        key = self._by_visitor.get(user_id)
        return None if key is None else self._sessions.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._sessions

    def forget(self, key: str | None, visitor: str | None = None) -> None:
        """Drop the session ``key`` and the visitor's pointer to their latest session."""
        session = self._sessions.pop(key, None) if key is not None else None
        for name in (visitor, session.visitor if session else None):
            if name is not None and (key is None or self._by_visitor.get(name) == key):
                self._by_visitor.pop(name, None)

    def point(self, visitor: str, key: str) -> None:
        """Make ``key`` the visitor's latest session (when it is live)."""
        if key in self._sessions:
            self._by_visitor[visitor] = key
            self._sessions.move_to_end(key)

    def take_over(self, other: LiveSessions) -> None:
        """Hold the sessions of ``other`` from now on (a model replacing another)."""
        self._sessions = other._sessions
        self._by_visitor = other._by_visitor

    def remap(
        self,
        previous: ItemTable,
        event_types: Sequence[str],
        *,
        kind_of: Callable[[str], int],
        item_of: Callable[[Mapping[str, Any] | str], int],
    ) -> None:
        """Point every session at a new model's item and event type indexes.

        Args:
            previous: the items of the model the indexes point into now.
            event_types: the event types of that model.
            kind_of: the new index of an event type.
            item_of: the new index of an item (added to the new model when unknown to it).
        """
        kinds = {old: kind_of(name) for old, name in enumerate(event_types)}
        used = sorted({i for session in self._sessions.values() for i in session.items})
        items: dict[int, int] = {}
        for old in used:
            category, brand = previous.category[old], previous.brand[old]
            price = float(previous.price[old])
            items[old] = item_of(
                {
                    "item_id": str(previous.item_ids[old]),
                    "category": previous.categories[category] if category >= 0 else None,
                    "brand": previous.brands[brand] if brand >= 0 else None,
                    "price": None if math.isnan(price) else price,
                }
            )
        for session in self._sessions.values():
            session.items = [items[i] for i in session.items]
            session.kinds = [kinds[k] for k in session.kinds]

    def observe(
        self,
        event: Mapping[str, Any],
        *,
        kind_of: Callable[[str], int],
        item_of: Callable[[Mapping[str, Any] | str], int],
        now: float,
    ) -> None:
        """Add one canonical event to its session (``session_id``, else the visitor's).

        Args:
            event: the event.
            kind_of: the index of an event type (grows the vocabulary as needed).
            item_of: the index of an item of ``items`` (-1 to skip it).
            now: the event's time when it has none and its session no earlier event.
        """
        session = self._session_of(event)
        if session is None:
            return
        kind = kind_of(str(event.get("event_type") or event.get("event_name") or "unknown"))
        moment = to_epoch(event.get("event_ts"))
        if math.isnan(moment):
            moment = session.ts[-1] if session.ts else now
        for raw in event.get("items") or []:
            item = item_of(raw)
            if item < 0:
                continue
            session.items.append(item)
            session.kinds.append(kind)
            session.ts.append(moment)
        words = TOKEN.findall(str(event.get("search_query") or "").lower())
        session.words.extend(words)
        filters = event.get("filters")
        if isinstance(filters, Mapping):
            for name in ("category", "brand"):
                value = filters.get(name)
                if isinstance(value, str):
                    session.words.extend(TOKEN.findall(value.lower()))
        for found in (filters, event.get("properties")):
            if isinstance(found, Mapping):
                _add_names(session.categories, found.get("category"))
                _add_names(session.brands, found.get("brand"))
        for name in ("items", "kinds", "ts", "words", "categories", "brands"):
            values = getattr(session, name)
            if len(values) > self.max_events:
                del values[: len(values) - self.max_events]

    def _session_of(self, event: Mapping[str, Any]) -> LiveSession | None:
        """The event's session, started if new (dropping the least recent one when full)."""
        visitor = event.get("user_id") or event.get("anonymous_id")
        key = event.get("session_id") or (f"{visitor}#live" if visitor else None)
        if key is None:
            return None
        key = str(key)
        session = self._sessions.get(key)
        if session is None:
            session = LiveSession(str(visitor) if visitor else None)
            self._sessions[key] = session
            if len(self._sessions) > self.max_sessions:
                old_key, old = self._sessions.popitem(last=False)
                if old.visitor and self._by_visitor.get(old.visitor) == old_key:
                    del self._by_visitor[old.visitor]
        else:
            self._sessions.move_to_end(key)
            if visitor and session.visitor is None:
                session.visitor = str(visitor)
        if session.visitor:
            self._by_visitor[session.visitor] = key
        return session


def _add_names(names: list[str], value: object) -> None:
    """Append the name or names in ``value`` (a string or a list of them) not seen yet."""
    given = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for name in given:
        if isinstance(name, str) and name:
            if name in names:
                names.remove(name)
            names.append(name)
