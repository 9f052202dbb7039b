"""Ranking: the ranker contract, the session ranker, the baselines and what they share.

``contract`` (:class:`~target_personalize.engine.RankerBase`), ``session_ranker``,
``baselines``, ``index`` (CSR session and item indexes), ``interactions`` (the training data
read from the store) and ``model_io`` (where a fitted model is kept next to its store). The
public names are exported by :mod:`target_personalize.engine`.
"""
