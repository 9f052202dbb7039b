"""hypothesis over canonical events and Segment calls: checked or refused by field, never a crash.

``coerce_event`` either gives a row that the store takes and gives back, or raises
``InvalidEventError`` naming a field; the HTTP API's normaliser (canonical events and the
Segment mapping) either gives a record and row or errors whose ``loc`` names the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from target_personalize.engine import EVENT_COLUMNS, EventStore, InvalidEventError, coerce_event
from target_personalize.serve.app import _Normaliser
from target_personalize.serve.limits import Limits
from tests.fuzz.profiles import FUZZ

#: Text of every kind: control characters, quotes, SQL, surrogates left out (not UTF-8).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
MOMENT = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.isoformat())
#: Any moment with any offset, the edges of the calendar included (valid or refused by field).
EDGE_MOMENT = st.datetimes(timezones=st.timezones() | st.just(UTC)).map(lambda m: m.isoformat())
ANYTHING = JSON | MOMENT | EDGE_MOMENT | st.floats() | st.binary(max_size=8)
ITEM = st.fixed_dictionaries(
    {"item_id": TEXT.filter(bool)},
    optional={"price": st.floats(allow_nan=False, allow_infinity=False), "category": TEXT},
)
CANONICAL = st.fixed_dictionaries(
    {
        "source": TEXT.filter(bool),
        "event_id": TEXT.filter(bool),
        "event_name": TEXT.filter(bool),
        "event_ts": MOMENT,
    },
    optional={
        "session_id": TEXT,
        "user_id": TEXT,
        "revenue": st.floats(allow_nan=False, allow_infinity=False),
        "items": st.lists(ITEM, max_size=3),
        "properties": st.dictionaries(TEXT, JSON, max_size=4),
        "event_count": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    },
)


@st.composite
def damaged(draw: st.DrawFn) -> dict[str, Any]:
    """A canonical event with some fields replaced by anything, or removed."""
    event = dict(draw(CANONICAL))
    for name in draw(st.lists(st.sampled_from(list(EVENT_COLUMNS)), max_size=3)):
        if draw(st.booleans()):
            event[name] = draw(ANYTHING)
        else:
            event.pop(name, None)
    return event


@given(event=CANONICAL)
@FUZZ
def test_valid_events_are_stored_and_read_back(event: dict[str, Any]) -> None:
    row = coerce_event(event)
    with EventStore("duckdb:///:memory:") as store:
        store.load_rows([row])
        stored = store.query(
            "SELECT source, event_id, event_name, properties FROM events WHERE event_id = ?",
            [event["event_id"]],
        )
    assert [tuple(stored[0][:3])] == [(event["source"], event["event_id"], event["event_name"])]


@given(event=damaged())
@FUZZ
def test_damaged_events_are_refused_by_field_or_coerced(event: dict[str, Any]) -> None:
    try:
        row = coerce_event(event)
    except InvalidEventError as error:
        assert error.field in EVENT_COLUMNS
        assert str(error)
        return
    assert len(row) == len(EVENT_COLUMNS)
    # What coerce_event accepts, the store takes (it does not check again).
    with EventStore("duckdb:///:memory:") as store:
        store.load_rows([row])
        assert store.query("SELECT count(*) FROM events")[0][0] == 1


SEGMENT = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "page", "screen", "identify", "alias", "other", 1])},
    optional={
        "event": TEXT | st.integers(),
        "userId": TEXT | st.integers() | st.none(),
        "anonymousId": TEXT | st.none(),
        "messageId": TEXT | st.none(),
        "timestamp": MOMENT | EDGE_MOMENT | TEXT,
        "receivedAt": MOMENT,
        "properties": st.dictionaries(
            st.sampled_from(["product_id", "sku", "price", "revenue", "products", "url", "x"]),
            JSON,
            max_size=5,
        ),
        "context": st.dictionaries(
            st.sampled_from(["page", "campaign", "location", "traits", "ip"]),
            JSON | st.dictionaries(TEXT, JSON, max_size=3),
            max_size=4,
        ),
    },
)


@given(body=st.one_of(SEGMENT, CANONICAL, damaged(), JSON))
@FUZZ
def test_the_api_normaliser_checks_or_names_the_field(body: Any) -> None:
    normaliser = _Normaliser({}, Limits())
    (checked, errors) = normaliser.one(body, 0, ["body"])
    if checked is None:
        for error in errors:
            assert error.loc[0] == "body" and error.msg
        return
    assert not errors
    record, row = checked
    assert row == coerce_event(record)
    if isinstance(body, dict) and body.get("type") == "track":
        assert record["source"] == "segment"
        assert record["event_name"] == body["event"]
