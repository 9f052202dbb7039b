"""target-personalize: the Singer target."""

from __future__ import annotations

import typing as t

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from target_personalize.engine import DEFAULT_DATABASE_URL, EventStore, refresh_ranker
from target_personalize.reader import FloatMsgSpecReader
from target_personalize.sinks import EventsSink, ItemsSink

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.sinks import Sink


#: Fast-path records between two checks of the oldest pending record's age.
_AGE_CHECK_EVERY = 1000


class TargetPersonalize(Target):
    """Loads canonical clickstream events and the item catalog into the personalization engine."""

    name = "target-personalize"
    package_name = "clickstream-personalize"
    message_reader_class = FloatMsgSpecReader
    default_sink_class = EventsSink
    config_jsonschema = th.PropertiesList(
        th.Property(
            "database_url",
            th.StringType,
            default=DEFAULT_DATABASE_URL,
            title="Database URL",
            description=(
                "Where the engine keeps events and models: duckdb:///FILE (embedded, the default "
                "is personalize.duckdb in the working directory) or postgresql+psycopg://USER@HOST/DB."
            ),
        ),
        th.Property(
            "key_conversion",
            th.StringType,
            default="purchase",
            title="Key conversion",
            description="The event type the engine optimizes for (purchase, booking, add_to_cart...).",
        ),
        th.Property(
            "refresh_after_load",
            th.BooleanType,
            default=True,
            title="Refresh after load",
            description=(
                "Refit the engine's ranking model after each load, incrementally, when one has "
                "been fitted (personalize fit)."
            ),
        ),
        th.Property(
            "train_window_days",
            th.NumberType,
            title="Training window (days)",
            description=(
                "The ranking model's refreshes after a load train on the events of this many "
                "days back from the store's latest event (e.g. 30). Empty: the window the model "
                "was fitted with (personalize fit --train-window-days; by default every event)."
            ),
        ),
        th.Property(
            "objectives",
            th.ObjectType(
                th.Property(
                    "conversion",
                    th.NumberType,
                    title="Objective: conversion",
                    description="Weight of P(key conversion) next to relevance (0: off).",
                ),
                th.Property(
                    "margin",
                    th.NumberType,
                    title="Objective: margin",
                    description=(
                        "Weight of the expected margin, P x margin (P x price where the "
                        "catalog has no cost or margin: output then says value = price)."
                    ),
                ),
                th.Property(
                    "revenue",
                    th.NumberType,
                    title="Objective: revenue",
                    description="Weight of the expected revenue, P x price (order value).",
                ),
                th.Property(
                    "engagement",
                    th.NumberType,
                    title="Objective: engagement",
                    description=(
                        "Weight of the expected engagement: the item's mean engagement_ms "
                        "(else media_progress_pct); output says engagement = none without "
                        "either signal."
                    ),
                ),
                additional_properties=False,
            ),
            title="Objectives",
            description=(
                "Default weights of the ranking objectives besides relevance, saved with the "
                'model at each refresh, e.g. {"conversion": 1.0, "margin": 0.5}; all zero '
                "ranks by relevance alone. Requests can override them."
            ),
        ),
        th.Property(
            "state_url",
            th.StringType,
            title="Serving state URL",
            description=(
                "For `personalize serve` on several processes or hosts: redis://HOST:PORT/DB, "
                "where live sessions, wrong-key counters and the model version are shared. "
                "Empty: one process keeps them in memory."
            ),
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._store: EventStore | None = None
        #: Streams whose plain canonical events the reader hands straight to their sink.
        self._typed_sinks: dict[str, EventsSink] = {}
        if isinstance(self.message_reader, FloatMsgSpecReader):
            self.message_reader.fast_records = self._take_typed_event

    @property
    def store(self) -> EventStore:
        """The engine's event store, opened on first use and shared by all sinks."""
        if self._store is None:
            url = self.config.get("database_url") or DEFAULT_DATABASE_URL
            self._store = EventStore(url)
            self.logger.info("Loading into the %s store", self._store.dialect)
        return self._store

    @override
    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        # Commit what came before a new state and pass the state on at once, so Meltano's
        # bookmark follows the store closely (the SDK alone would wait for the end of the
        # pipe or five minutes). The state is still never emitted before its records commit.
        previous = self._latest_state
        super()._process_state_message(message_dict)
        if self._latest_state != previous and any(
            sink.current_size for sink in self._sinks_active.values()
        ):
            self.drain_all()

    @override
    def _process_schema_message(self, message_dict: dict[str, t.Any]) -> None:
        super()._process_schema_message(message_dict)
        self._typed_sinks = {
            stream: sink
            for stream, maps in self.mapper.stream_maps.items()
            if len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == stream
            and isinstance(sink := self._sinks_active.get(stream), EventsSink)
            and sink.takes_typed_events
        }

    def _take_typed_event(self, stream: str, event: t.Any, line: int) -> bool:
        """The reader's fast path: a RECORD's canonical event, decoded into a typed struct.

        Skips the SDK's per-record work that the store does again or that does nothing here
        (a copy, the identity stream map, JSON-schema validation, which the sink turns off):
        the event becomes its store row at once. Returns False for the SDK's path.
        """
        sink = self._typed_sinks.get(stream)
        if sink is None or not sink.add_typed_event(event, line):
            return False
        size = sink.current_size
        if size >= sink.max_size:
            self.drain_one(sink)
        elif size % _AGE_CHECK_EVERY == 0:
            # The clock is read every so many records, not for each (the SDK reads it each).
            self._handle_max_record_age()
        return True

    @override
    def _drain_all(self, sink_list: Iterable[Sink], parallelism: int) -> None:
        # A lone sink (the usual case: one *_events stream) is drained on the reading thread:
        # handing it to a thread pool at every STATE message costs time and gains nothing.
        sinks = list(sink_list)
        super()._drain_all(sinks, 1 if len(sinks) <= 1 else parallelism)

    @override
    def get_sink_class(self, stream_name: str) -> type[Sink]:
        if stream_name == "items":
            return ItemsSink
        return EventsSink

    @override
    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        rejected = sum(getattr(sink, "rejected", 0) for sink in self._sinks_active.values())
        loaded = sum(getattr(sink, "loaded", 0) for sink in self._sinks_active.values())
        if rejected:
            self.logger.warning(
                "Loaded %d records; %d bad records went to the rejects table", loaded, rejected
            )
        else:
            self.logger.info("Loaded %d records, no bad records", loaded)
        if self._store is not None:
            if self.config.get("refresh_after_load", True):
                self._refresh_models(self._store)
            self._store.close()
            self._store = None

    def _refresh_models(self, store: EventStore) -> None:
        ranker = refresh_ranker(
            store,
            key_conversion=self.config.get("key_conversion"),
            objectives=self.config.get("objectives"),
            train_window_days=self.config.get("train_window_days"),
        )
        if ranker is None:
            self.logger.info("No ranking model to refresh yet (run `personalize fit` once)")
        else:
            self.logger.info("Refreshed the ranking model with the new events")
