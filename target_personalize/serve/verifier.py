"""Checks presented API keys on the event loop: each distinct key is verified once at a time.

Requests that present the same unverified key share one scrypt check (a future per key
fingerprint), so a burst of first requests with a right key costs one check and is never
counted as wrong keys. Wrong keys are counted by the :class:`FailureCounter` (the server's live
state: in this process, or in Redis shared by every process), and each count is one step that
also checks the limit: a request is counted only while its client is under the limit, else it
is refused, so concurrent wrong keys, on one process or many, cannot overshoot the limit. A
check in progress counts as one pending failure of its client (taken back when the key is right).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

import anyio.to_thread

from target_personalize.serve.auth import KeyRing, Role

__all__ = ["FailureCounter", "KeyVerifier"]


class FailureCounter(Protocol):
    """Wrong keys per client (see :class:`~target_personalize.serve.auth.FailureLimiter`)."""

    async def failed(self, client: str) -> str:
        """Count a wrong key of ``client`` (or one about to be checked) if under the limit.

        Returns:
            The failure's token, for :meth:`succeeded`.

        Raises:
            BlockedError: when ``client`` is at the limit (nothing counted).
        """
        ...

    async def succeeded(self, client: str, token: str) -> None:
        """Take back the failure ``token`` of ``client``: its key turned out right."""
        ...


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
            BlockedError: when ``client`` is at the limit and the key is not known to be right.
        """
        found = self.ring.cached_role(presented)
        if found is not None:
            return found
        fingerprint = hashlib.sha256(presented.encode()).digest()
        pending = self._checks.get(fingerprint)
        if pending is not None:
            # The same key is being checked for another request: share that check, and
            # count a failure only if the key turns out wrong.
            found = await asyncio.shield(pending)
            if found is None:
                await self.limiter.failed(client)
            return found
        token = await self.limiter.failed(client)
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
                task = asyncio.ensure_future(self.limiter.succeeded(client, token))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

        pending.add_done_callback(settle)
        return await asyncio.shield(pending)
