"""schemathesis against the live server's OpenAPI, with a write key: never a 500, and every
client error says which field (or which limit) is at fault."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given

from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import new_key
from tests.fuzz.profiles import FUZZ
from tests.serve.conftest import Server, running, seed_store

KEY, RECORD = new_key("write")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = seed_store(tmp_path_factory.mktemp("fuzz") / "store.duckdb")
    settings = ServeSettings(database_url=url, max_key_failures=0)
    with running(settings, keys=KeyRing([RECORD])) as handle:
        yield handle


@pytest.fixture(scope="module")
def api_schema(live: Server) -> Any:
    answer = live.client.get("/openapi.json", headers={"X-API-Key": KEY})
    answer.raise_for_status()
    loaded = schemathesis.openapi.from_dict(answer.json())
    loaded.config.update(base_url=live.url)
    # Valid requests and invalid ones (wrong types, missing fields, out-of-range values).
    loaded.config.generation.update(modes=list(schemathesis.GenerationMode))
    return loaded


def names_the_field(status: int, body: Any) -> bool:
    """A 4xx body names what is wrong: ``detail`` is a message, or errors each with a loc."""
    if status in (401, 403, 404, 405, 429):
        return isinstance(body, dict) and isinstance(body.get("detail"), str)
    if not isinstance(body, dict):
        return False
    detail = body.get("detail")
    if isinstance(detail, str):
        return bool(detail)
    return (
        isinstance(detail, list)
        and bool(detail)
        and all(
            isinstance(error, dict) and error.get("loc") and error.get("msg") for error in detail
        )
    )


def fuzz(operation: Any, live: Server) -> None:
    """Call one operation with the examples its schema gives; check each answer."""

    @given(case=operation.as_strategy())
    @FUZZ
    def check(case: Any) -> None:
        response = case.call(base_url=live.url, headers={"X-API-Key": KEY}, timeout=30)
        where = (operation.label, case.as_curl_command(), response.text[:500])
        assert response.status_code < 500, where
        if 400 <= response.status_code < 500:
            try:
                body = response.json()
            except ValueError:
                body = None
            assert names_the_field(response.status_code, body), where

    check()


def test_no_server_error_and_client_errors_name_the_field(api_schema: Any, live: Server) -> None:
    # Driven through hypothesis directly (schemathesis' pytest plugin does not load under
    # pytest 9): one property per operation, with the operation's own strategy.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        fuzz(operation, live)


def test_the_schema_covers_every_endpoint(api_schema: Any) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/v1/events", "/v1/recommendations", "/v1/rank", "/v1/objectives"} <= paths
