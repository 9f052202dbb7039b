"""The readout from the store, by hand-computed answers, on DuckDB and PostgreSQL (issue 12)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from target_personalize.engine import EventStore
from target_personalize.engine.experiments import Experiment, ExperimentError, build_readout
from target_personalize.engine.experiments.registry import ExperimentRegistry
from target_personalize.engine.experiments.report import readout_from_store
from target_personalize.engine.experiments.sql import read_experiment
from target_personalize.engine.store.served import (
    Exposure,
    Impression,
    record_exposures,
    record_impressions,
)

T0 = datetime(2024, 3, 10, 12, 0, 0)


def _event(event_id: str, event_type: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "source": "test",
        "event_id": event_id,
        "event_name": event_type,
        "event_type": event_type,
        "event_ts": at.isoformat() + "Z",
        **fields,
    }


def _buy(event_id: str, visitor: str, at: datetime, item: str, qty: int, revenue: float,
         **fields: Any) -> dict[str, Any]:  # fmt: skip
    return _event(
        event_id, "purchase", at, user_id=visitor, revenue=revenue,
        items=[{"item_id": item, "quantity": qty, "price": revenue / qty}], **fields,
    )  # fmt: skip


def _shop(store: EventStore) -> None:
    """control: u1, u2; engine: u3 (anonymous a3), u4, u6; u5 saw both, u7 none."""
    ExperimentRegistry(store).create(
        Experiment.from_cli("exp", ["control=popularity", "engine=engine"], "50,50")
    )
    record_exposures(
        store,
        [
            Exposure("exp", "control", "u1", T0),
            Exposure("exp", "control", "u2", T0),
            Exposure("exp", "engine", "u4", T0),
            Exposure("exp", "engine", "u6", T0),
            Exposure("exp", "control", "u5", T0),
            Exposure("exp", "engine", "u5", T0 + timedelta(minutes=5)),
            Exposure("other", "control", "u4", T0),  # another experiment
        ],
    )
    record_impressions(
        store,
        [
            Impression("r1", "exp", "control", "u1", "s1", T0, ("i9",)),
            Impression("r3", "exp", "engine", "a3", "s3", T0, ("i1", "i2")),
            Impression("r4", "exp", "engine", "u4", "s4", T0, ("i2",)),
            Impression("r6", "exp", "engine", "u6", "s6", T0, ("i2",)),
        ],
    )
    store.load_items(
        [
            {"item_id": "i1", "price": 15.0, "margin": 5.0},
            {"item_id": "i2", "price": 20.0, "cost": 12.0},
            {"item_id": "i9", "price": 10.0},
        ]
    )
    store.load_events(
        [
            # u3 is anonymous; exposed by an event another tool logged
            _event(
                "x3",
                "experiment_exposure",
                T0,
                anonymous_id="a3",
                experiment_id="exp",
                variant_id="engine",
            ),
            _event(
                "x5",
                "experiment_exposure",
                T0,
                user_id="u5",
                experiment_id="exp",
                variant_id="engine",
            ),
            # u1: a click on its list, a purchase 1 h later (view-through), one the day before
            _event(
                "c1",
                "product_view",
                T0 + timedelta(minutes=1),
                user_id="u1",
                rec_id="r1",
                items=[{"item_id": "i9"}],
            ),
            _buy("b1", "u1", T0 + timedelta(hours=1), "i9", 1, 10.0),
            _buy("b1pre", "u1", T0 - timedelta(days=1), "i9", 1, 5.0),
            _event("a1", "add_to_cart", T0 + timedelta(hours=1), user_id="u1"),
            # u2: bought only before exposure
            _buy("b2pre", "u2", T0 - timedelta(hours=2), "i9", 1, 7.0),
            # u3: click-through purchase from list r3; a purchase 20 days before (no CUPED)
            _buy(
                "b3", None, T0 + timedelta(hours=2), "i1", 2, 30.0, anonymous_id="a3", rec_id="r3"
            ),
            _buy("b3old", None, T0 - timedelta(days=20), "i1", 1, 15.0, anonymous_id="a3"),
            # u4: bought an item its list showed 3 h before (view-through)
            _buy("b4", "u4", T0 + timedelta(hours=3), "i2", 1, 20.0),
            # u6: bought a shown item, but 30 h later (outside the 24 h window)
            _buy("b6", "u6", T0 + timedelta(hours=30), "i2", 2, 40.0),
            # u5 (excluded) and u7 (never exposed) bought too
            _buy("b5", "u5", T0 + timedelta(hours=1), "i2", 1, 20.0),
            _buy("b7", "u7", T0 + timedelta(hours=1), "i2", 1, 20.0),
        ]
    )


@pytest.fixture
def shop(store_url: str) -> Any:
    with EventStore(store_url) as store:
        _shop(store)
        yield store


def test_visitor_table_by_hand(shop: EventStore) -> None:
    visitors, attribution = read_experiment(shop, "exp", ("control", "engine"))
    # rows in visitor order: a3, u1, u2, u4, u6
    assert visitors.variant.tolist() == [1, 0, 0, 1, 1]
    assert visitors.conversion_events.tolist() == [1, 1, 0, 1, 1]
    assert visitors.revenue.tolist() == [30, 10, 0, 20, 40]
    # margin per unit: i1 5 (catalog margin), i2 20 - 12, i9 none
    assert visitors.margin is not None and visitors.margin.tolist() == [10, 0, 0, 8, 16]
    assert visitors.pre_conversion_events is not None
    assert visitors.pre_conversion_events.tolist() == [0, 1, 1, 0, 0]  # b3old is 20 days back
    assert visitors.pre_revenue is not None and visitors.pre_revenue.tolist() == [0, 5, 7, 0, 0]
    assert visitors.impressions is not None and visitors.impressions.tolist() == [1, 1, 0, 1, 1]
    assert visitors.clicks is not None and visitors.clicks.tolist() == [1, 1, 0, 0, 0]
    assert visitors.multiple_variants == 1
    engine, control = attribution["engine"], attribution["control"]
    assert (engine.click_through, engine.view_through) == (1, 1)  # b3 by rec_id, b4 viewed
    assert (engine.revenue, engine.margin) == (50, 18)
    assert (control.click_through, control.view_through, control.revenue) == (0, 1, 10)


def test_a_list_shown_is_not_a_list_clicked(shop: EventStore) -> None:
    # personalize.js records each list it shows as recommendation_view with the list's rec_id
    shown = _event(
        "v4", "recommendation_view", T0 + timedelta(seconds=1), user_id="u4", rec_id="r4"
    )
    clicked = _event(
        "c6", "recommendation_click", T0 + timedelta(seconds=2), user_id="u6", rec_id="r6"
    )
    shop.load_events([shown, clicked])
    visitors, _ = read_experiment(shop, "exp", ("control", "engine"))
    assert visitors.clicks is not None
    assert visitors.clicks.tolist() == [1, 1, 0, 0, 1]  # a3, u1, u2, u4 (only shown), u6


def test_a_visitor_exposed_before_signing_in_converts_as_the_same_visitor(
    shop: EventStore,
) -> None:
    # a8 is exposed and shown r8 anonymously, signs in as u8 (an event with both ids), then
    # buys as u8 only. a9 is a shared device: seen with u9 and u10, it stays its own visitor.
    record_exposures(
        shop, [Exposure("exp", "engine", "a8", T0), Exposure("exp", "control", "a9", T0)]
    )
    record_impressions(shop, [Impression("r8", "exp", "engine", "a8", "s8", T0, ("i1",))])
    shop.load_events(
        [
            _event("l8", "login", T0 + timedelta(minutes=1), user_id="u8", anonymous_id="a8"),
            _buy("b8", "u8", T0 + timedelta(minutes=2), "i1", 1, 15.0, rec_id="r8"),
            _event("l9", "login", T0 + timedelta(minutes=1), user_id="u9", anonymous_id="a9"),
            _event("l10", "login", T0 + timedelta(minutes=1), user_id="u10", anonymous_id="a9"),
            _buy("b9", "u9", T0 + timedelta(minutes=2), "i9", 1, 10.0),
        ]
    )
    visitors, attribution = read_experiment(shop, "exp", ("control", "engine"))
    # rows in visitor order: a3, a9, u1, u2, u4, u6, u8 (a8 signed in as u8)
    assert visitors.variant.tolist() == [1, 0, 0, 0, 1, 1, 1]
    assert visitors.conversion_events.tolist() == [1, 0, 1, 0, 1, 1, 1]
    assert visitors.revenue.tolist() == [30, 0, 10, 0, 20, 40, 15]
    assert visitors.clicks is not None and visitors.clicks.tolist() == [1, 0, 1, 0, 0, 0, 1]
    assert attribution["engine"].click_through == 2  # b3 and now b8, by rec_id


def test_window_and_pre_period_are_parameters(shop: EventStore) -> None:
    visitors, attribution = read_experiment(
        shop, "exp", ("control", "engine"), attribution_window=timedelta(hours=48), pre_days=0
    )
    assert attribution["engine"].view_through == 2  # b6, 30 h after r6, now counts
    assert visitors.pre_conversion_events is None


def test_readout_equals_the_statistics_on_the_same_visitors(shop: EventStore) -> None:
    result = readout_from_store(shop, "exp", min_sample=1)
    visitors, _ = read_experiment(shop, "exp", ("control", "engine"))
    expected = build_readout(
        visitors, experiment_id="exp", weights={"control": 0.5, "engine": 0.5}, min_sample=1
    ).as_dict()
    assert result["lift"] == expected["lift"]
    assert result["srm"] == expected["srm"]
    control, engine = result["variants"]
    assert (control["visitors"], control["conversions"], control["revenue"]) == (2, 1, 10)
    assert (engine["visitors"], engine["conversions"], engine["revenue"]) == (3, 3, 90)
    assert engine["ctr"] == pytest.approx(1 / 3)
    assert engine["attributed_conversions"] == 2
    assert result["excluded"] == {"multiple_variants": 1}
    assert result["defined"] == "registry"
    rate = next(x for x in result["lift"] if x["metric"] == "conversion_rate")
    assert rate["estimate"] == pytest.approx((3 / 3 - 1 / 2) / (1 / 2))


def test_experiment_known_only_by_exposure_events(shop: EventStore) -> None:
    shop.load_events(
        [
            _event(
                "g1", "experiment_exposure", T0, user_id="g1", experiment_id="gb", variant_id="1"
            ),
            _event(
                "g2", "experiment_exposure", T0, user_id="u1", experiment_id="gb", variant_id="0"
            ),
        ]
    )
    result = readout_from_store(shop, "gb")
    assert result["defined"] == "exposures"
    assert [v["variant_id"] for v in result["variants"]] == ["0", "1"]
    assert [v["conversions"] for v in result["variants"]] == [1, 0]  # u1's b1 came after
    with pytest.raises(ExperimentError, match="no exposure names it"):
        readout_from_store(shop, "nothing")


def test_served_rows_are_written_once(shop: EventStore) -> None:
    again = [Exposure("exp", "control", "u1", T0 + timedelta(hours=3))]  # same day
    record_exposures(shop, again)
    record_impressions(shop, [Impression("r1", "exp", "engine", "u9", None, T0, ("zz",))])
    assert shop.query("SELECT count(*) FROM exposures WHERE visitor_id = 'u1'") == [(1,)]
    assert shop.query("SELECT variant_id FROM impressions WHERE rec_id = 'r1'") == [("control",)]
    assert shop.query(
        "SELECT position, item_id FROM impression_items WHERE rec_id = 'r3' ORDER BY position"
    ) == [(1, "i1"), (2, "i2")]
    assert shop.query("SELECT count(*) FROM impression_items WHERE rec_id = 'r1'") == [(1,)]
    record_exposures(shop, [Exposure("exp", "control", "u1", T0 + timedelta(days=1))])
    assert shop.query("SELECT count(*) FROM exposures WHERE visitor_id = 'u1'") == [(2,)]


def test_registry_create_list_stop(store_url: str) -> None:
    with EventStore(store_url) as store:
        registry = ExperimentRegistry(store)
        first = Experiment.from_cli("a", ["c=popularity", "e=engine"], "10,10")
        registry.create(first)
        registry.create(Experiment.from_cli("b", ["c=none", "e=engine"], conversion="booking"))
        with pytest.raises(ExperimentError, match="exists already"):
            registry.create(first)
        assert registry.get("a").experiment == first
        assert {s.experiment.experiment_id for s in registry.list("running")} == {"a", "b"}
        stopped = registry.stop("a")
        assert stopped.status == "stopped" and stopped.stopped_at is not None
        assert [s.experiment.experiment_id for s in registry.list("running")] == ["b"]
        with pytest.raises(ExperimentError, match="no experiment 'z'"):
            registry.stop("z")


def test_a_store_made_before_gets_the_new_columns(store_url: str) -> None:
    with EventStore(store_url) as store:
        for name in ("experiment_id", "variant_id", "rec_id"):
            store.backend.execute(f"ALTER TABLE events DROP COLUMN {name}")
        store.backend.execute("DROP TABLE impressions")
    with EventStore(store_url) as store:
        store.load_events([_event("e", "product_view", T0, user_id="u", rec_id="r")])
        assert store.query("SELECT rec_id FROM events") == [("r",)]
        assert store.query("SELECT count(*) FROM impressions") == [(0,)]


def test_variants_must_match(shop: EventStore) -> None:
    with pytest.raises(ExperimentError, match="'engine'"):
        read_experiment(shop, "exp", ("control", "other"))
    assert np.isfinite(read_experiment(shop, "exp", ("control", "engine"))[0].revenue).all()
