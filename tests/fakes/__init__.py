"""Local fake HTTP servers for Mixpanel and Amplitude export APIs."""

from __future__ import annotations
