"""Offline evaluation: rankers replayed on held-out sessions, next to the baselines.

``replay`` (session-rec's protocol: :func:`~target_personalize.engine.evaluate`,
:func:`~target_personalize.engine.evaluate_store`), ``splits`` (by time, fixed, per user),
``results`` (what is reported) and ``metrics`` (precision and NDCG at k). The public names
are exported by :mod:`target_personalize.engine`.
"""
