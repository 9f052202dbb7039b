"""Funnel mining toward the key conversion, as SQL inside the store.

``discovery`` (the funnel found from the data, and the event weights the ranker reads),
``sql`` (the queries both kinds of funnel run), ``markov`` (removal effects on a Markov
chain over event types) and ``report`` (the HTML report). The public names are exported by
:mod:`target_personalize.engine`.
"""
