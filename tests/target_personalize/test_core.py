"""The singer-sdk standard target tests, against a fresh DuckDB store."""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class

from target_personalize.target import TargetPersonalize

_STORE = Path(tempfile.mkdtemp(prefix="target-personalize-sdk-")) / "store.duckdb"

TestTargetPersonalize = get_target_test_class(
    target_class=TargetPersonalize,
    config={"database_url": f"duckdb:///{_STORE}"},
)
