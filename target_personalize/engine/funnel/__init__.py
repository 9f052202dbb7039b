"""Funnel mining toward the key conversion, as SQL inside the store.

``discovery`` (the funnel found from the data, and the event weights the ranker reads),
``explicit`` (the steps a user names, counted as analytics tools count them), ``shared``
(units, ranges, time to convert, temporary tables), ``sql`` (the queries both run),
``markov`` (removal effects on a Markov chain over event types) and ``report`` (the HTML
report). The public names are exported by :mod:`target_personalize.engine`.
"""
