"""Request and response bodies of the HTTP API (pydantic), and the OpenAPI schema they give."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from target_personalize.engine import Objectives

__all__ = [
    "CanonicalEvent",
    "EventError",
    "ExperimentBody",
    "IngestResult",
    "Item",
    "ObjectivesBody",
    "RankRequest",
    "Ranking",
    "ScoredItemOut",
    "SegmentPage",
    "SegmentTrack",
]


class Item(BaseModel):
    """A product, listing, video or article an event involves."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1)
    name: str | None = None
    category: str | None = None
    brand: str | None = None
    variant: str | None = None
    price: float | None = None
    quantity: int | None = None
    position: int | None = None


class CanonicalEvent(BaseModel):
    """One canonical event (docs/canonical-event.md); ``source`` defaults to ``api``.

    ``event_type`` defaults to the crosswalk's type of ``event_name`` (and ``event_name`` to
    ``event_type``); fields not listed here are refused, put them in ``properties``.
    """

    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="api", min_length=1)
    event_id: str = Field(min_length=1)
    event_name: str | None = None
    event_type: str | None = None
    event_ts: datetime
    ingested_at: datetime | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    page_url: str | None = None
    page_path: str | None = None
    page_title: str | None = None
    referrer: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    search_query: str | None = None
    filters: dict[str, Any] | None = None
    items: list[Item] = Field(default_factory=list)
    order_id: str | None = None
    revenue: float | None = None
    currency: str | None = None
    engagement_ms: float | None = None
    scroll_depth_pct: float | None = None
    media_progress_pct: float | None = None
    event_count: int = 1
    is_aggregate: bool = False
    device_category: str | None = None
    os: str | None = None
    browser: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    user_properties: dict[str, Any] = Field(default_factory=dict)
    experiment_id: str | None = None
    variant_id: str | None = None
    rec_id: str | None = Field(
        default=None,
        description="The recommended list this event came from (or properties.rec_id).",
    )


class _SegmentCall(BaseModel):
    """Fields common to Segment ``track`` and ``page`` calls (other Segment fields are kept)."""

    model_config = ConfigDict(extra="allow")

    userId: str | int | None = None  # noqa: N815 - Segment's spelling
    anonymousId: str | None = None  # noqa: N815
    messageId: str | None = None  # noqa: N815
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None  # noqa: N815
    receivedAt: datetime | None = None  # noqa: N815
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)


class SegmentTrack(_SegmentCall):
    """A Segment ``track`` call: ``event`` is the raw event name (``Product Viewed``)."""

    type: Literal["track"]
    event: str = Field(min_length=1)


class SegmentPage(_SegmentCall):
    """A Segment ``page`` (or ``screen``) call: a page view."""

    type: Literal["page", "screen"]
    name: str | None = None
    category: str | None = None


class EventError(BaseModel):
    """Why one event of a batch was refused."""

    index: int = Field(description="Position of the event in the batch (0 for a single event).")
    loc: list[str | int] = Field(description="Path to the field at fault, from the request body.")
    msg: str
    type: str


class IngestResult(BaseModel):
    """What a POST /v1/events did."""

    accepted: int = Field(
        description="Events stored (journaled or committed) and applied to live sessions."
    )
    duplicates: int = Field(
        description="Of those, events this server had already received (stored once, not "
        "applied to their session again)."
    )
    skipped: int = Field(description="Segment identify/group/alias calls, which hold no event.")
    rejected: list[EventError] = Field(
        default_factory=list, description="Refused events (only with partial=true)."
    )


class ScoredItemOut(BaseModel):
    """One ranked item."""

    item_id: str
    score: float
    relevance: float
    conversion: float = Field(description="Smoothed P(key conversion) of the item.")
    value: float | None = Field(description="Margin, else price, else order value.")
    engagement: float | None = Field(
        default=None,
        description="Mean engagement_ms (else media_progress_pct) of the item; null when unknown.",
    )


class Ranking(BaseModel):
    """An answer of /v1/recommendations or /v1/rank."""

    user_id: str | None
    session_id: str | None
    objectives: dict[str, float]
    items: list[ScoredItemOut]
    took_ms: float
    rec_id: str | None = Field(
        default=None,
        description="The served list's id (in an experiment): send it back with the events "
        "it leads to (`rec_id`), so they are attributed to it.",
    )
    experiment_id: str | None = Field(default=None, description="The experiment it was served in.")
    variant_id: str | None = Field(default=None, description="The visitor's variant.")


class RankRequest(BaseModel):
    """Re-rank ``items`` (e.g. search results) for a session or a user."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    session_id: str | None = None
    anonymous_id: str | None = Field(
        default=None,
        description="The device or cookie id: the experiment's visitor without user_id (not used to rank).",
    )
    experiment: str | None = Field(
        default=None,
        description="The experiment to serve in; default: the only running one; - for none.",
    )
    items: list[str] = Field(min_length=1, max_length=10_000)
    objectives: dict[str, float] | None = None


class ObjectivesBody(BaseModel):
    """Default objective weights (requests without ``objectives`` use them)."""

    model_config = ConfigDict(extra="forbid")

    conversion: float = Field(default=0.0, ge=0, le=Objectives.MAX_WEIGHT, allow_inf_nan=False)
    margin: float = Field(default=0.0, ge=0, le=Objectives.MAX_WEIGHT, allow_inf_nan=False)
    revenue: float = Field(default=0.0, ge=0, le=Objectives.MAX_WEIGHT, allow_inf_nan=False)
    engagement: float = Field(default=0.0, ge=0, le=Objectives.MAX_WEIGHT, allow_inf_nan=False)


class ExperimentBody(BaseModel):
    """A new experiment, as ``personalize experiment create`` takes it."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str = Field(description="Its id, never reused.")
    variants: list[str] = Field(
        min_length=2,
        description="ID=RANKER each: engine, objectives:conversion=1,margin=0.5, popularity, "
        "views_only or none.",
    )
    traffic: str | None = Field(
        default=None, description="Percent of all visitors per variant, e.g. 50,50 (default even)."
    )
    conversion: str = "purchase"
    control: str | None = None
