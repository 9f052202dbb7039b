"""The sources the tap can read, and which settings block turns each one on."""

from __future__ import annotations

import enum
import typing as t

from tap_clickstream.sources.amplitude.streams import AmplitudeEventsStream
from tap_clickstream.sources.catalog.streams import ItemsStream
from tap_clickstream.sources.files.streams import FileEventsStream
from tap_clickstream.sources.ga4.streams import ga4_streams
from tap_clickstream.sources.mixpanel.streams import MixpanelEventsStream
from tap_clickstream.sources.snowplow.streams import SnowplowEventsStream

if t.TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_clickstream.streams import EventStream

__all__ = ["Provider", "active_providers"]

StreamBuilder = t.Callable[["Tap"], list["EventStream"]]


def _each(*classes: type[EventStream]) -> StreamBuilder:
    """A builder of one stream per class."""
    return lambda tap: [stream_class(tap=tap) for stream_class in classes]


class Provider(enum.Enum):
    """A source and how its streams are built; its key is the settings block that activates it.

    Most sources have one stream class each; GA4 has one stream per configured Data API report
    besides its export stream.
    """

    MIXPANEL = "mixpanel", _each(MixpanelEventsStream)
    AMPLITUDE = "amplitude", _each(AmplitudeEventsStream)
    GA4 = "ga4", ga4_streams
    SNOWPLOW = "snowplow", _each(SnowplowEventsStream)
    FILES = "files", _each(FileEventsStream)
    CATALOG = "catalog", _each(ItemsStream)

    def __init__(self, key: str, build: StreamBuilder) -> None:
        self.key = key
        self._build = build

    def build_streams(self, tap: Tap) -> list[EventStream]:
        """This source's streams for ``tap`` (its config decides which, for GA4 reports)."""
        return self._build(tap)


def active_providers(config: t.Mapping[str, t.Any]) -> list[Provider]:
    """The providers whose settings block is set; the file source (bundled sample) if none is."""
    active = [provider for provider in Provider if config.get(provider.key)]
    return active or [Provider.FILES]
