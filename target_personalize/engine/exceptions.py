"""Engine errors; every one derives from :class:`EngineError`.

The tree::

EngineError
├── StoreError            the store cannot be opened, created or written
│   └── UnsupportedDatabaseError   the URL names a database the store does not support
└── InvalidEventError     an event does not fit the canonical schema (field and reason)
"""

from __future__ import annotations

__all__ = ["EngineError", "InvalidEventError", "StoreError", "UnsupportedDatabaseError"]


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
