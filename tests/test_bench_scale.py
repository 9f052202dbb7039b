"""bench/scale.py's PostgreSQL store: a schema of its own, measured, then dropped."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from tests.support.bench import load_bench
from tests.support.postgres import SERVER, postgres_schema_url


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    return load_bench("scale")


def schemas(prefix: str) -> set[str]:
    conninfo = SERVER.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [f"{prefix}%"]
        ).fetchall()
    return {row[0] for row in rows}


def test_postgres_store_is_sized_then_dropped(scale: ModuleType, tmp_path: Path) -> None:
    with postgres_schema_url():  # skips (or fails in CI) when PostgreSQL is not reachable
        pass
    paths = scale.write_parquet(tmp_path, 900)
    with scale.postgres_store(SERVER, 900) as (store, size_on_disk):
        schema = store.query("SELECT current_schema()")[0][0]
        assert schema.startswith("bench_scale_")
        assert schema in schemas("bench_scale_")
        empty = size_on_disk()
        loaded = store.load_event_files([str(p) for p in paths], "parquet").loaded
        assert loaded == store.query("SELECT count(*) FROM events")[0][0] > 0
        assert size_on_disk() > empty
        store.close()
    assert schema not in schemas("bench_scale_")
