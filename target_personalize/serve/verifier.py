"""Checks presented API keys on the event loop: each distinct key is verified once at a time.

Requests that present the same unverified key share one scrypt check (a future per key
fingerprint), so a burst of first requests with a right key costs one check and is never
counted as wrong keys. Only keys that turn out wrong stay counted by the
:class:`~target_personalize.serve.auth.FailureLimiter`; a check in progress counts as one
pending failure of its client (taken back when the key is right), so concurrent guesses cannot
all pass the limiter while their checks run.
"""

from __future__ import annotations

import asyncio
import hashlib

import anyio.to_thread

from target_personalize.serve.auth import FailureLimiter, KeyRing, Role

__all__ = ["BlockedError", "KeyVerifier"]


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

    def __init__(self, ring: KeyRing, limiter: FailureLimiter) -> None:
        self.ring = ring
        self.limiter = limiter
        self._checks: dict[bytes, asyncio.Future[Role | None]] = {}

    async def role(self, presented: str, client: str) -> Role | None:
        """The key's role, ``None`` for a wrong key (counted against ``client``).

        Raises:
            BlockedError: when ``client`` is refused for now and the key is not verified yet.
        """
        found = self.ring.cached_role(presented)
        if found is not None:
            return found
        wait = self.limiter.retry_after(client)
        if wait is not None:
            raise BlockedError(wait)
        fingerprint = hashlib.sha256(presented.encode()).digest()
        pending = self._checks.get(fingerprint)
        if pending is not None:
            # The same key is being checked for another request: share that check, and
            # count a failure only if the key turns out wrong.
            found = await asyncio.shield(pending)
            if found is None:
                self.limiter.failed(client)
            return found
        self.limiter.failed(client)
        if not self.ring.may_be_ours(presented):
            return None
        check = asyncio.ensure_future(anyio.to_thread.run_sync(self.ring.role_of, presented))
        self._checks[fingerprint] = check

        def done(future: asyncio.Future[Role | None]) -> None:
            # Settled here, not in the awaiting request: it may be cancelled meanwhile.
            del self._checks[fingerprint]
            if not future.cancelled() and future.exception() is None and future.result():
                self.limiter.succeeded(client)

        check.add_done_callback(done)
        return await asyncio.shield(check)
