"""P(buy | shown) from recorded impressions: known answers, shrinkage, SQL on both backends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from target_personalize.commands.ranking import fit
from target_personalize.engine import (
    EventStore,
    SessionRanker,
    load_ranker,
    refresh_ranker,
    save_ranker,
)
from target_personalize.engine.ranking.contract import RankerBase
from target_personalize.engine.ranking.shown_conversion import (
    MIN_SHOWN_CONVERSIONS,
    ShownConversion,
    fit_shown,
    read_shown,
)
from target_personalize.engine.store.served import Impression, record_impressions

T0 = datetime(2024, 3, 10, 12, 0, 0)


def _grid(n_items: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    item, position = np.meshgrid(np.arange(n_items), np.arange(1, positions + 1), indexing="ij")
    return item.ravel(), position.ravel()


def test_recovers_p_and_position_bias_by_construction() -> None:
    """Items shown mostly at one position each (a permutation, as a ranker would), bought with
    probability ``theta_k * p_i``: the estimate recovers p's order and values, and theta.

    Tolerances: an item's estimate has a standard error about ``sqrt(p_i / E_i)`` (E_i its
    examined impressions), theta_k's about ``theta_k * sqrt(1/c_k + 1/c_1)`` (c_k the conversions
    at position k): each is asserted within 4 of them.
    """
    rng = np.random.default_rng(5)
    n, k = 8, 10
    p = np.linspace(0.03, 0.17, n)
    theta = 1.0 / np.log2(np.arange(2, k + 2))
    item, position = _grid(n, k)
    slot = rng.permutation(k)[:n] + 1  # each item's usual position
    shown = np.where(position == slot[item], 20_000.0, 1_500.0)
    bought = rng.binomial(shown.astype(np.int64), theta[position - 1] * p[item]).astype(float)
    naive = np.bincount(item, bought) / np.bincount(item, shown)
    # The construction matters: the raw rate per impression misorders some items.
    assert (np.argsort(naive) != np.argsort(p)).any()

    fitted = fit_shown(item, position, shown, bought, np.full(n, 0.01))

    assert list(np.argsort(fitted.p)) == list(range(n))
    examined = np.bincount(item, shown * theta[position - 1])
    assert np.all(np.abs(fitted.p - p) < 4 * np.sqrt(p / examined))
    at_position = np.bincount(position - 1, bought)
    error = theta * np.sqrt(1 / at_position + 1 / at_position[0])
    assert np.all(np.abs(fitted.examination - theta) < 4 * error)


def test_few_impressions_shrink_towards_the_item_rate() -> None:
    """Items with thousands of impressions keep their own rate; one shown 5 times (1 bought)
    stays near its prior, the item's conversion rate scaled to the impressions' level; an item
    never shown gets exactly that prior."""
    rng = np.random.default_rng(3)
    n = 40
    p = rng.uniform(0.05, 0.15, n)
    item = np.arange(n)
    shown = np.full(n, 5_000.0)
    shown[0] = 5.0
    bought = rng.binomial(shown.astype(np.int64), p).astype(float)
    bought[0] = 1.0  # a raw rate of 0.2, above every item
    rate = np.full(n + 1, 0.02)  # one more item, never shown
    rate[n] = 0.04

    fitted = fit_shown(item, np.ones(n, dtype=np.int64), shown, bought, rate)

    scale = bought.sum() / shown.sum() / 0.02  # the prior: rates at the impressions' level
    np.testing.assert_allclose(fitted.prior, scale * rate)
    assert abs(fitted.p[0] - fitted.prior[0]) < abs(fitted.p[0] - 0.2) / 5
    assert fitted.p[n] == pytest.approx(2 * fitted.prior[0])
    own = bought[1:] / shown[1:]
    assert np.all(np.abs(fitted.p[1:n] - own) < 0.2 * np.abs(own - fitted.prior[1:n]) + 1e-3)


def _event(event_id: str, event_type: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "source": "test",
        "event_id": event_id,
        "event_name": event_type,
        "event_type": event_type,
        "event_ts": at.isoformat() + "Z",
        **fields,
    }


def _buy(event_id: str, visitor: str, at: datetime, item: str, **fields: Any) -> dict[str, Any]:
    return _event(event_id, "purchase", at, user_id=visitor, items=[{"item_id": item}], **fields)


def test_counts_per_item_and_position_on_both_backends(any_store: EventStore) -> None:
    """Only a key conversion of the shown item, carrying the list's rec_id, within 24 h counts."""
    record_impressions(
        any_store,
        [
            Impression("r1", None, None, "u1", "s1", T0, ("i1", "i2")),
            Impression("r2", "exp", "a", "u2", "s2", T0, ("i2", "i1")),
            Impression("r3", None, None, "u3", "s3", T0, ("i1",)),
        ],
    )
    any_store.load_events(
        [
            _buy("b1", "u1", T0 + timedelta(hours=1), "i2", rec_id="r1"),  # counts: (i2, 2)
            _buy("b2", "u2", T0 + timedelta(hours=30), "i2", rec_id="r2"),  # after the window
            _buy("b3", "u3", T0 + timedelta(hours=1), "i1"),  # view-through: not counted
            _buy("b4", "u1", T0 + timedelta(hours=2), "i3", rec_id="r1"),  # i3 was not shown
            _event("v1", "product_view", T0, user_id="u2", rec_id="r2", items=[{"item_id": "i1"}]),
        ]
    )
    counts = read_shown(any_store, "purchase")
    rows = list(
        zip(counts.item_ids, counts.position.tolist(), counts.shown, counts.bought, strict=True)
    )
    assert rows == [("i1", 1, 2, 0), ("i1", 2, 1, 0), ("i2", 1, 1, 0), ("i2", 2, 1, 1)]
    assert read_shown(any_store, "add_to_cart").bought.sum() == 0


def _shop(store: EventStore, converted: int) -> None:
    """50 sessions view i1..i3; each is shown (i1, i2, i3) or (i3, i2, i1); ``converted`` of
    them buy i3 through the list, and every session buys i1 without one (its item rate is high)."""
    events = []
    impressions = []
    for n in range(50):
        at = T0 + timedelta(minutes=10 * n)
        user = f"u{n}"
        for m, item in enumerate(("i1", "i2", "i3")):
            events.append(
                _event(f"v{n}{m}", "product_view", at, user_id=user, session_id=f"s{n}",
                       items=[{"item_id": item}])
            )  # fmt: skip
        order = ("i1", "i2", "i3") if n % 2 else ("i3", "i2", "i1")
        impressions.append(Impression(f"r{n}", None, None, user, f"s{n}", at, order))
        events.append(_buy(f"b{n}", user, at + timedelta(minutes=1), "i1", session_id=f"s{n}"))
        if n < converted:
            events.append(
                _buy(f"c{n}", user, at + timedelta(minutes=2), "i3", session_id=f"s{n}",
                     rec_id=f"r{n}")
            )  # fmt: skip
    store.load_events(events)
    record_impressions(store, impressions)


def test_fit_uses_shown_p_with_enough_impressions_and_keeps_it_when_saved(tmp_path: Any) -> None:
    with EventStore(f"duckdb:///{tmp_path}/shop.duckdb") as store:
        _shop(store, converted=MIN_SHOWN_CONVERSIONS + 5)
        ranker = SessionRanker().fit(store)
        model = ranker.conversion_model
        assert isinstance(model, ShownConversion)
        assert ranker.conversion_source["source"] == "impressions"
        assert ranker.conversion_source["conversions"] == MIN_SHOWN_CONVERSIONS + 5
        i1, i3 = ranker._lookup(["i1", "i3"])
        # i1 sells more per session (item rates), but i3 is what the lists sell.
        assert ranker._factors.conversion[i1] > ranker._factors.conversion[i3]
        assert model.p[i3] > model.p[i1]
        top = ranker.recommend(session_id="s1", k=3, objectives={"conversion": 2})[0]
        assert top.item_id == "i3"
        assert top.conversion == pytest.approx(model.p[i3])
        ranker.save(tmp_path / "model.npz")
        loaded = RankerBase.load(tmp_path / "model.npz")
        assert loaded.conversion_source == ranker.conversion_source
        assert isinstance(loaded.conversion_model, ShownConversion)
        np.testing.assert_array_equal(loaded.conversion_model.p, model.p[: len(loaded.items)])


def test_too_few_converted_impressions_keep_item_rates() -> None:
    with EventStore("duckdb:///:memory:") as store:
        _shop(store, converted=MIN_SHOWN_CONVERSIONS - 1)
        ranker = SessionRanker().fit(store)
        assert ranker.conversion_model is None
        assert ranker.conversion_source == {"source": "item rates"}


def test_personalize_fit_says_where_the_dials_p_comes_from(tmp_path: Any) -> None:
    url = f"duckdb:///{tmp_path}/shop.duckdb"
    with EventStore(url) as store:
        _shop(store, converted=MIN_SHOWN_CONVERSIONS + 5)
    runner = CliRunner()
    text = runner.invoke(fit, ["--database-url", url])
    assert text.exit_code == 0, text.output
    assert "Dials: P(buy | shown) learnt from 150 impressions (35 converted, 3 items)" in (
        " ".join(text.output.split())
    )
    result = runner.invoke(fit, ["--database-url", url, "--format", "json"])
    source = json.loads(result.stdout)["conversion_source"]
    assert (source["source"], source["impressions"], source["conversions"]) == (
        "impressions", 150, MIN_SHOWN_CONVERSIONS + 5,
    )  # fmt: skip


def test_the_refresh_after_a_load_switches_to_shown_p(tmp_path: Any) -> None:
    with EventStore(f"duckdb:///{tmp_path}/shop.duckdb") as store:
        _shop(store, converted=MIN_SHOWN_CONVERSIONS - 1)
        save_ranker(SessionRanker().fit(store), store)
        late = T0 + timedelta(days=1)
        store.load_events(
            [
                _buy(f"late{n}", f"u{n}", late, "i3", session_id=f"s{n}", rec_id=f"r{n}")
                for n in range(MIN_SHOWN_CONVERSIONS - 1, MIN_SHOWN_CONVERSIONS + 1)
            ]
        )
        refreshed = refresh_ranker(store)
        assert refreshed is not None
        assert refreshed.conversion_source["conversions"] == MIN_SHOWN_CONVERSIONS + 1
        loaded = load_ranker(store)
        assert loaded is not None and isinstance(loaded.conversion_model, ShownConversion)
