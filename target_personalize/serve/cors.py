"""Which web pages may call the API: CORS headers, and a guard against other sites' writes.

Browsers let any page *send* a simple request (a ``POST`` with a ``text/plain`` body, as
``personalize.js`` sends its batches) to any server; CORS only hides the answer. So besides
the CORS headers for the allowed origins, :class:`OriginGuard` refuses (403, before the body is
read) a write that comes from a page of any other origin: a site a visitor happens to open
cannot post events to a server on their machine or network.

Allowed origins: ``--allow-origin`` (repeatable), the origins of the browser keys, and the
server's own origin. Without ``--allow-origin``, a server bound to loopback allows any loopback
origin (``http://localhost:3000`` while developing a shop), one bound elsewhere none.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from target_personalize.serve.browser import (
    ASGIApp,
    BrowserGuard,
    BrowserSettings,
    RateCounter,
    Receive,
    Scope,
    Send,
    parse_origin,
    refuse,
)
from target_personalize.serve.settings import is_loopback

__all__ = ["LOOPBACK_ORIGINS", "OriginGuard", "add_browser_middleware"]

#: Any page served from this machine.
LOOPBACK_ORIGINS = r"https?://(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class OriginGuard:
    """ASGI middleware: a write from a page of an origin that is not allowed gets 403.

    Requests without an ``Origin`` header (servers, curl, same-origin navigations) pass: they
    are not a page's, and API keys decide about them.

    Args:
        app: the wrapped application.
        origins: the allowed origins.
        pattern: a regular expression of more allowed origins (or ``None``).
    """

    def __init__(self, app: ASGIApp, origins: set[str], pattern: str | None) -> None:
        self.app = app
        self.origins = origins
        self.pattern = re.compile(pattern) if pattern else None

    def allowed(self, origin: str, scope: Scope) -> bool:
        """Whether a page of ``origin`` may write to this server."""
        normalised = parse_origin(origin)
        if normalised is None:
            return False
        if normalised in self.origins or (self.pattern and self.pattern.fullmatch(normalised)):
            return True
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        return parse_origin(f"{scope.get('scheme', 'http')}://{host}") == normalised

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a write from a page of a foreign origin; pass anything else on."""
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            origin = dict(scope.get("headers") or []).get(b"origin")
            if origin is not None and not self.allowed(origin.decode("latin-1"), scope):
                text = origin.decode("latin-1")
                detail = (
                    f"pages of {text} may not write here: start the server with "
                    f"--allow-origin {text} (or a browser key bound to it)"
                )
                await refuse(send, 403, detail)
                return
        await self.app(scope, receive, send)


def add_browser_middleware(
    app: FastAPI, settings: BrowserSettings, host: str, rates: RateCounter | None = None
) -> None:
    """CORS for the allowed origins, the origin guard, and the browser key rules.

    Args:
        app: the API.
        settings: the browser settings.
        host: the address the server binds (loopback widens the default origins).
        rates: where browser requests are counted (default: in this process).
    """
    origins = set(settings.allow_origins or []) | settings.keys.origins()
    pattern = LOOPBACK_ORIGINS if settings.allow_origins is None and is_loopback(host) else None
    # Added innermost first: CORS answers preflights and labels every answer, refusals too.
    app.add_middleware(BrowserGuard, settings=settings, rates=rates)
    app.add_middleware(OriginGuard, origins=origins, pattern=pattern)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=sorted(origins),
        allow_origin_regex=pattern,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type", "x-api-key", "authorization"],
        max_age=600,
    )
