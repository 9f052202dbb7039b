"""Mixpanel raw event export (``GET /api/2.0/export``)."""
