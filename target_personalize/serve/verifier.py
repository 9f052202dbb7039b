"""Checks presented API keys on the event loop: each distinct key is verified once at a time.

Requests that present the same unverified key share one scrypt check (a future per key
fingerprint), so a burst of first requests with a right key costs one check and is never
counted as wrong keys. Only keys that turn out wrong stay counted by the
:class:`FailureCounter` (the server's live state: in this process, or in Redis shared by every
process); a check in progress counts as one pending failure of its client (taken back when the
key is right), so concurrent guesses cannot all pass the limit while their checks run.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

import anyio.to_thread

from target_personalize.serve.auth import KeyRing, Role

__all__ = ["BlockedError", "FailureCounter", "KeyVerifier"]


class FailureCounter(Protocol):
    """Wrong keys per client (see :class:`~target_personalize.serve.auth.FailureLimiter`)."""

    async def retry_after(self, client: str) -> float | None:
        """Seconds ``client`` must wait before presenting a key; ``None``: it may now."""
        ...

    async def failed(self, client: str) -> None:
        """Count a wrong key of ``client`` (or one about to be checked)."""
        ...

    async def succeeded(self, client: str) -> None:
        """Take back the failure counted for a key of ``client`` that turned out right."""
        ...


class BlockedError(Exception):
    """The client presented too many wrong keys; ``wait`` seconds until it may try again."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"retry in {wait:.0f} s")
        self.wait = wait


class KeyVerifier:
    """The role of a presented key, with the wrong-key limit per client.

    Args:
        ring: the accepted keys.
        limiter: wrong keys per client.
    """

    def __init__(self, ring: KeyRing, limiter: FailureCounter) -> None:
        self.ring = ring
        self.limiter = limiter
        self._checks: dict[bytes, asyncio.Future[Role | None]] = {}
        self._settling: set[asyncio.Future[None]] = set()

    async def role(self, presented: str, client: str) -> Role | None:
        """The key's role, ``None`` for a wrong key (counted against ``client``).

        Raises:
            BlockedError: when ``client`` is refused for now and the key is not verified yet.
        """
        found = self.ring.cached_role(presented)
        if found is not None:
            return found
        wait = await self.limiter.retry_after(client)
        if wait is not None:
            raise BlockedError(wait)
        fingerprint = hashlib.sha256(presented.encode()).digest()
        pending = self._checks.get(fingerprint)
        if pending is not None:
            # The same key is being checked for another request: share that check, and
            # count a failure only if the key turns out wrong.
            found = await asyncio.shield(pending)
            if found is None:
                await self.limiter.failed(client)
            return found
        await self.limiter.failed(client)
        if not self.ring.may_be_ours(presented):
            return None
        # Another request may have started checking the same key while this one counted.
        pending = self._checks.get(fingerprint)
        if pending is None:
            pending = asyncio.ensure_future(anyio.to_thread.run_sync(self.ring.role_of, presented))
            self._checks[fingerprint] = pending
            pending.add_done_callback(lambda _: self._checks.pop(fingerprint, None))

        def settle(future: asyncio.Future[Role | None]) -> None:
            # Settled here, not in the awaiting request: it may be cancelled meanwhile.
            if not future.cancelled() and future.exception() is None and future.result():
                task = asyncio.ensure_future(self.limiter.succeeded(client))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

        pending.add_done_callback(settle)
        return await asyncio.shield(pending)
