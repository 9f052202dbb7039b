"""Cross-check on the REES46 sample: the SQL funnels against an independent plain-Python computation."""

from __future__ import annotations

import csv
import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tap_clickstream.samples import SAMPLE_EVENT_MAP, SAMPLE_PATH
from target_personalize.engine import EventStore, discover_funnel, explicit_funnel
from tests.support.postgres import postgres_schema_url

BUY = "purchase"
Event = tuple[datetime, int, str]  # (time, is conversion, label)


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE_PATH.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        # the file ends with a truncated row
        return [dict(zip(header, row, strict=True)) for row in reader if len(row) == len(header)]


def canonical(rows: list[dict[str, str]]) -> list[dict[str, object]]:
    return [
        {
            "source": "file",
            "event_id": f"rees46-{n}",
            "event_name": row["event_type"],
            "event_type": SAMPLE_EVENT_MAP.get(row["event_type"], row["event_type"]),
            "event_ts": row["event_time"].removesuffix(" UTC"),
            "user_id": row["user_id"],
            "session_id": row["user_session"],
            "items": [
                {
                    "item_id": row["product_id"],
                    "category": row["category_code"] or None,
                    "brand": row["brand"] or None,
                    "price": float(row["price"]),
                }
            ],
        }
        for n, row in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    loaded = sample_rows()
    assert len(loaded) == 17_434
    return loaded


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def rees46(request: pytest.FixtureRequest, rows: list[dict[str, str]]) -> Iterator[EventStore]:
    if request.param == "duckdb":
        with EventStore("duckdb:///:memory:") as store:
            store.load_events(canonical(rows))
            yield store
        return
    with postgres_schema_url() as url, EventStore(url) as store:
        store.load_events(canonical(rows))
        yield store


# The independent computation


def units_of(rows: list[dict[str, str]], unit: str) -> dict[str, list[Event]]:
    key = "user_session" if unit == "session" else "user_id"
    units: dict[str, list[Event]] = defaultdict(list)
    for row in rows:
        label = SAMPLE_EVENT_MAP.get(row["event_type"], row["event_type"])
        at = datetime.strptime(row["event_time"], "%Y-%m-%d %H:%M:%S UTC")
        units[row[key]].append((at, int(label == BUY), label))
    for events in units.values():
        events.sort()  # time, then the conversion last, then label
    return units


def journey(events: list[Event]) -> tuple[list[Event], datetime | None]:
    """Events up to the first conversion (same-time events included), and its time."""
    conv = next((at for at, is_conv, _ in events if is_conv), None)
    return [e for e in events if conv is None or e[0] <= conv], conv


def collapsed(labels: list[str]) -> list[str]:
    return [x for i, x in enumerate(labels) if i == 0 or labels[i - 1] != x]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (at - low) * (ordered[high] - ordered[low])


def removal_effects(paths: list[tuple[list[str], bool]]) -> tuple[float, dict[str, float]]:
    """Markov chain by value iteration over transition counts (no linear algebra)."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for labels, converted in paths:
        chain = ["(start)", *labels, "(conversion)" if converted else "(null)"]
        for a, b in itertools.pairwise(chain):
            out[a][b] += 1
    states = sorted(set(out) - {"(start)"})

    def solve(removed: str | None) -> float:
        h = dict.fromkeys([*out, "(conversion)", "(null)"], 0.0)
        h["(conversion)"] = 1.0
        for _ in range(10_000):
            delta = 0.0
            for s, targets in out.items():
                if s == removed:
                    continue
                total = sum(targets.values())
                value = sum(n * (0.0 if t == removed else h[t]) for t, n in targets.items()) / total
                delta = max(delta, abs(value - h[s]))
                h[s] = value
            if delta < 1e-15:
                break
        return h["(start)"]

    base = solve(None)
    return base, {s: (base - solve(s)) / base for s in states}


def greedy_funnel(
    events: list[Event], steps: list[str], window: timedelta | None
) -> list[datetime]:
    """Times at which a unit reached each step (loose order, window from step 1)."""
    reached: list[datetime] = []
    for step in steps:
        start = reached[-1] if reached else None
        found = next(
            (
                at
                for at, _, label in events
                if label == step
                and (start is None or at >= start)
                and (start is None or window is None or at <= reached[0] + window)
            ),
            None,
        )
        if found is None:
            break
        reached.append(found)
    return reached


# The checks


@pytest.mark.parametrize("unit", ["session", "user"])
def test_discovered_funnel_matches_plain_python(rees46: EventStore, rows, unit: str) -> None:
    found = discover_funnel(rees46, BUY, unit=unit, top_paths=10)
    units = units_of(rows, unit)
    journeys = {u: journey(events) for u, events in units.items()}
    converters = sum(conv is not None for _, conv in journeys.values())
    assert (found.units, found.converters) == (len(units), converters)
    assert found.base_rate == pytest.approx(converters / len(units))
    if unit == "session":
        assert (found.units, found.converters) == (5066, 200)  # as the data README counts

    # time to convert, from the unit's first event
    waits = [(conv - units[u][0][0]).total_seconds() for u, (_, conv) in journeys.items() if conv]
    ttc = found.time_to_convert
    assert ttc.median_seconds == pytest.approx(statistics.median(waits))
    assert ttc.p90_seconds == pytest.approx(percentile(waits, 0.9))
    assert ttc.mean_seconds == pytest.approx(statistics.fmean(waits))
    assert sum(b.units for b in ttc.histogram) == converters

    # event types: units, converters, lift
    seen: dict[str, list[str]] = defaultdict(list)
    for u, (events, _) in journeys.items():
        for label in {label for _, is_conv, label in events if not is_conv}:
            seen[label].append(u)
    by_type = {c.event_type: c for c in found.contributions}
    assert set(by_type) == set(seen)
    for label, members in seen.items():
        conv = sum(journeys[u][1] is not None for u in members)
        assert (by_type[label].units, by_type[label].converters) == (len(members), conv), label
        assert by_type[label].lift == pytest.approx(conv / len(members) / (converters / len(units)))

    # paths
    paths = [
        (collapsed([label for _, is_conv, label in events if not is_conv]), conv is not None)
        for events, conv in journeys.values()
    ]
    tally: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for labels, converted in paths:
        tally[tuple(labels)][0 if converted else 1] += 1
    for group, listed in ((0, found.converting_paths), (1, found.non_converting_paths)):
        expected = sorted(
            ((-n[group], path) for path, n in tally.items() if n[group]),
        )[:10]
        assert [(-p.units, p.path) for p in listed] == expected
        for p in listed:
            n = tally[p.path]
            assert p.conversion_rate == pytest.approx(n[0] / (n[0] + n[1]))

    # Markov chain and removal effects
    base, effects = removal_effects(paths)
    assert found.conversion_probability == pytest.approx(base, abs=1e-9)
    assert found.conversion_probability == pytest.approx(found.base_rate, abs=1e-9)
    assert {c.event_type: c.removal_effect for c in found.contributions} == pytest.approx(
        effects, abs=1e-6
    )
    assert found.event_weights[BUY] == 1.0
    assert all(0.0 <= w <= 1.0 for w in found.event_weights.values())

    # the discovered steps, followed in order through every event of each unit
    labels = [s.event_type for s in found.steps]
    assert labels[-1] == BUY
    reached = [greedy_funnel(events, labels, None) for events in units.values()]
    assert [s.funnel_units for s in found.steps] == [
        sum(len(r) > k for r in reached) for k in range(len(labels))
    ]


@pytest.mark.parametrize("unit", ["session", "user"])
def test_explicit_funnel_matches_plain_python(rees46: EventStore, rows, unit: str) -> None:
    steps = ["product_view", "add_to_cart", BUY]
    window = timedelta(minutes=30)
    funnel = explicit_funnel(rees46, steps, unit=unit, window=window)
    reached = [greedy_funnel(events, steps, window) for events in units_of(rows, unit).values()]
    assert [s.units for s in funnel.steps] == [sum(len(r) > k for r in reached) for k in range(3)]
    done = [(r[-1] - r[0]).total_seconds() for r in reached if len(r) == 3]
    assert funnel.time_to_convert.median_seconds == pytest.approx(statistics.median(done))
    assert funnel.time_to_convert.mean_seconds == pytest.approx(statistics.fmean(done))
    # the raw names of the sample count the same
    raw = explicit_funnel(rees46, ["view", "cart", BUY], unit=unit, window=window)
    assert [s.units for s in raw.steps] == [s.units for s in funnel.steps]
