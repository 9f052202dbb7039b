"""Offline evaluation: rankers replayed on held-out sessions, next to the baselines.

The public names are exported by :mod:`target_personalize.engine`.
"""
