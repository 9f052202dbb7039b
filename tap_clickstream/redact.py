"""Upstream error text made fit for a log: cut short, anything credential-like masked.

An API's error body can echo what it was sent (a token, a key in a query string, a signed
URL) or hold a lot of HTML; logs keep neither.
"""

from __future__ import annotations

import re

__all__ = ["MAX_CHARS", "redact"]

#: The most of an upstream error kept in a message.
MAX_CHARS = 500
MASK = "***"

_PATTERNS = [
    # Authorization schemes: "Bearer abc", "Basic abc=="
    re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # key=value or "key": "value" where the key names a secret
    re.compile(
        r"""(?ix)
        ((?:api[_-]?key|apikey|api[_-]?secret|secret|token|access[_-]?token|refresh[_-]?token
            |password|passwd|pwd|client[_-]?secret|private[_-]?key|signature|sig|auth
            |authorization|credentials?|x-api-key)
         ["']?\s*[:=]\s*["']?)
        ([^"'\s&,;}]+)
        """
    ),
    # user:password@ in URLs
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)"),
    # personalize API keys, JWTs, and long opaque tokens (hex, base64)
    re.compile(r"\bpk_[0-9a-f]{8}_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(?<![A-Za-z0-9/+_-])(?=[A-Za-z0-9/+_-]*\d)[A-Za-z0-9/+_-]{32,}={0,2}"),
]


def _mask(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) == 3:  # user:password@
        return f"{groups[0]}{MASK}{groups[2]}"
    if len(groups) == 2:  # key=value
        return f"{groups[0]}{MASK}"
    if len(groups) == 1:  # scheme token
        return f"{groups[0]} {MASK}"
    return MASK


def redact(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` with credential-like strings masked, cut to ``limit`` characters."""
    cut = text[: limit * 4]  # masking before cutting: a secret at the edge is not half-shown
    for pattern in _PATTERNS:
        cut = pattern.sub(_mask, cut)
    cut = cut.strip()
    return cut if len(cut) <= limit else cut[:limit] + f"... ({len(text)} characters)"
