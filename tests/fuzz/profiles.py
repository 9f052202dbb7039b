"""How hard the fuzz suite tries: ``ci`` by default (quick), ``deep`` by hand.

``PERSONALIZE_FUZZ_PROFILE=deep pytest tests/fuzz`` runs many more examples per test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("PERSONALIZE_FUZZ_PROFILE", "ci")
#: Examples per test (per API operation for schemathesis).
EXAMPLES = {"ci": 40, "deep": 2000}.get(PROFILE, 40)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=PROFILE == "ci",  # the same examples every CI run; a deep run explores
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)
