"""Engine errors; every one derives from :class:`EngineError`.

The tree::

EngineError
├── StoreError            the store cannot be opened, created or written
│   └── UnsupportedDatabaseError   the URL names a database the store does not support
├── InvalidEventError     an event does not fit the canonical schema (field and reason)
├── FunnelError           a funnel cannot be computed as asked (unit, steps, range...)
└── RankerError           a ranker cannot do what was asked
    ├── ModelNotFittedError  recommend/rank/save before fit or load
    └── ModelFormatError     a saved model is missing, unreadable or of another kind
"""

from __future__ import annotations

__all__ = [
    "EngineError",
    "FunnelError",
    "InvalidEventError",
    "ModelFormatError",
    "ModelNotFittedError",
    "RankerError",
    "StoreError",
    "UnsupportedDatabaseError",
]


class EngineError(Exception):
    """Base class of the engine's errors."""


class StoreError(EngineError):
    """The event store cannot be opened, created or written."""


class UnsupportedDatabaseError(StoreError):
    """The database URL names a backend the store does not support."""


class InvalidEventError(EngineError, ValueError):
    """An event does not fit the canonical schema.

    Attributes:
        field: the canonical field at fault.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FunnelError(EngineError, ValueError):
    """A funnel request cannot be computed as asked (unknown unit, no steps, bad range...)."""


class RankerError(EngineError):
    """A ranker cannot do what was asked."""


class ModelNotFittedError(RankerError):
    """The ranker has not been fitted (or loaded) yet."""


class ModelFormatError(RankerError):
    """A saved model is missing, unreadable, or was saved by another kind of ranker."""
