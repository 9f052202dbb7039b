"""Amplitude Export API (``GET /api/2/export``): zipped, gzipped JSON lines."""
