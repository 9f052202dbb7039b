"""Upstream error text is cut and its credential-like strings masked before it is logged."""

from __future__ import annotations

import pytest

from tap_clickstream.redact import MAX_CHARS, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("invalid api_key=abcd1234secret for project", "abcd1234secret"),
        ('{"access_token": "ya29.A0AfH6SMBxyz"}', "ya29.A0AfH6SMBxyz"),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("GET https://user:hunter2@host/x failed", "hunter2"),
        ("key pk_0123abcd_" + "Z" * 43, "Z" * 43),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
        ("opaque 3f2a9c0e4b1d8a7f6e5c4b3a2918f7e6d5c4b3a2 end", "3f2a9c0e4b1d8a7f6e5c4b3a2918f7e6"),
        ("client_secret: 'p@ss w0rd'", "p@ss"),
    ],
)
def test_credentials_are_masked(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert "***" in masked


def test_plain_errors_are_kept_and_long_ones_cut() -> None:
    assert redact("Project 12345 not found") == "Project 12345 not found"
    assert redact("  invalid date 2024-13-01  ") == "invalid date 2024-13-01"
    long = redact("<html>" + "x" * 3000)
    assert len(long) <= MAX_CHARS + 30
    assert long.endswith("... (3006 characters)")
