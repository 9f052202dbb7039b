"""Ranking: the ranker contract, the session ranker, the baselines and what they share.

* ``contract``: :class:`~target_personalize.engine.RankerBase`, fit/update/recommend/rank,
  built from the parts below; ``session_ranker`` and ``baselines`` implement it.
* ``vocabulary`` (the item index), ``live`` (live sessions), ``query`` (session and history
  at a request), ``cold_start``, ``objectives`` (:class:`~target_personalize.engine.Objectives`
  and the per-item factors they weigh), ``filters``, ``event_weights``.
* ``persistence`` (save/load, no pickle), ``incremental`` (refits from new loads),
  ``model_io`` (where a fitted model is kept next to its store).
* ``interactions`` (the training data read from the store) and ``index`` (CSR session and
  item indexes).

The public names are exported by :mod:`target_personalize.engine`.
"""
