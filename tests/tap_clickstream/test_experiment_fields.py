"""Exposures other A/B tools log become canonical ``experiment_exposure`` events (issue 12)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tap_clickstream.events import EventTypeMapper
from tap_clickstream.normalize import experiment_fields
from tap_clickstream.sources.amplitude.streams import _Normaliser as AmplitudeNormaliser
from tap_clickstream.sources.ga4.export import normalise_export_row
from tap_clickstream.sources.mixpanel.streams import _Normaliser as MixpanelNormaliser

MAP = EventTypeMapper()


@pytest.mark.parametrize(
    ("name", "props", "expected"),
    [
        # Segment spec (also what Mixpanel and Amplitude document for "Experiment Viewed")
        (
            "Experiment Viewed",
            {"experiment_id": "exp-1", "experiment_name": "Hero", "variation_id": "v2",
             "variation_name": "Blue"},
            ("exp-1", "v2", None),
        ),
        # Only names given
        ("Experiment Viewed", {"experiment_name": "Hero", "variation_name": "Blue"},
         ("Hero", "Blue", None)),
        # GrowthBook's own tracking call, camelCase and snake_case
        ("experiment_viewed", {"experimentId": "checkout", "variationId": 1}, ("checkout", "1", None)),
        ("experiment_viewed", {"experiment_id": "checkout", "variation_id": "0"},
         ("checkout", "0", None)),
        # Amplitude Experiment
        ("$exposure", {"flag_key": "new-ranker", "variant": "treatment"},
         ("new-ranker", "treatment", None)),
        # Mixpanel's experiment event
        ("$experiment_started", {"Experiment name": "ranker", "Variant name": "engine"},
         ("ranker", "engine", None)),
    ],
)  # fmt: skip
def test_exposures_of_other_tools(
    name: str, props: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    event_type = MAP(name)
    assert event_type == "experiment_exposure"
    left = dict(props)
    assert experiment_fields(event_type, left) == expected
    assert len(left) == len(props) - 2  # the fields used are taken out of the properties


def test_names_and_variant_count_only_on_exposures() -> None:
    props = {"product_id": "p1", "variant": "red", "experiment_name": "x", "rec_id": "r-9"}
    assert experiment_fields("product_view", props) == (None, None, "r-9")
    assert props == {"product_id": "p1", "variant": "red", "experiment_name": "x"}


def test_mixpanel_experiment_started() -> None:
    normalise = MixpanelNormaliser(MAP, ZoneInfo("UTC"))
    event = normalise(
        {
            "event": "$experiment_started",
            "properties": {
                "time": 1_709_251_200, "distinct_id": "u1", "$insert_id": "i1",
                "Experiment name": "ranker", "Variant name": "engine", "extra": 1,
            },
        }
    )  # fmt: skip
    assert (event["event_type"], event["experiment_id"], event["variant_id"]) == (
        "experiment_exposure", "ranker", "engine",
    )  # fmt: skip
    assert event["properties"] == {"extra": 1}
    click = normalise(
        {
            "event": "Product Clicked",
            "properties": {"time": 1_709_251_200, "distinct_id": "u1", "product_id": "p",
                           "rec_id": "r-1"},
        }
    )  # fmt: skip
    assert (click["rec_id"], click["experiment_id"]) == ("r-1", None)


def test_amplitude_exposure() -> None:
    event = AmplitudeNormaliser(MAP)(
        {
            "event_type": "$exposure",
            "uuid": "e-1",
            "event_time": "2024-03-01 10:00:00.000000",
            "server_upload_time": "2024-03-01 10:00:01.000000",
            "device_id": "d1",
            "event_properties": {"flag_key": "new-ranker", "variant": "treatment"},
        }
    )
    assert (event["event_type"], event["experiment_id"], event["variant_id"]) == (
        "experiment_exposure", "new-ranker", "treatment",
    )  # fmt: skip


def test_ga4_export_growthbook_experiment_viewed() -> None:
    row = {
        "event_name": "experiment_viewed",
        "event_timestamp": 1_709_287_200_000_000,
        "user_pseudo_id": "p1",
        "event_params": [
            {"key": "experiment_id", "value": {"string_value": "checkout"}},
            {"key": "variation_id", "value": {"int_value": 1}},
        ],
    }
    event = normalise_export_row(row, MAP)
    assert (event["event_type"], event["experiment_id"], event["variant_id"]) == (
        "experiment_exposure", "checkout", "1",
    )  # fmt: skip
    assert "experiment_id" not in event["properties"]
