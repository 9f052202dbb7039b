"""The sources the tap can read, and which settings turn each one on."""

from __future__ import annotations

import enum
import typing as t

from tap_clickstream.sources.amplitude import settings as amplitude
from tap_clickstream.sources.amplitude.streams import AmplitudeEventsStream
from tap_clickstream.sources.catalog import settings as catalog
from tap_clickstream.sources.catalog.streams import ItemsStream
from tap_clickstream.sources.files import settings as files
from tap_clickstream.sources.files.streams import FileEventsStream
from tap_clickstream.sources.ga4 import settings as ga4
from tap_clickstream.sources.ga4.streams import ga4_streams
from tap_clickstream.sources.mixpanel import settings as mixpanel
from tap_clickstream.sources.mixpanel.streams import MixpanelEventsStream
from tap_clickstream.sources.snowplow import settings as snowplow
from tap_clickstream.sources.snowplow.streams import SnowplowEventsStream

if t.TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_clickstream.source_settings import SourceSettings
    from tap_clickstream.streams import EventStream

__all__ = ["Provider", "active_providers"]

StreamBuilder = t.Callable[["Tap"], list["EventStream"]]


def _each(*classes: type[EventStream]) -> StreamBuilder:
    """A builder of one stream per class."""
    return lambda tap: [stream_class(tap=tap) for stream_class in classes]


class Provider(enum.Enum):
    """A source, its settings block, and how its streams are built.

    Most sources have one stream class each; GA4 has one stream per configured Data API report
    besides its export stream.
    """

    MIXPANEL = mixpanel.SETTINGS, _each(MixpanelEventsStream)
    AMPLITUDE = amplitude.SETTINGS, _each(AmplitudeEventsStream)
    GA4 = ga4.SETTINGS, ga4_streams
    SNOWPLOW = snowplow.SETTINGS, _each(SnowplowEventsStream)
    FILES = files.SETTINGS, _each(FileEventsStream)
    CATALOG = catalog.SETTINGS, _each(ItemsStream)

    def __init__(self, settings: SourceSettings, build: StreamBuilder) -> None:
        self.settings = settings
        self.key = settings.key
        self._build = build

    def build_streams(self, tap: Tap) -> list[EventStream]:
        """This source's streams for ``tap`` (its config decides which, for GA4 reports)."""
        return self._build(tap)


def active_providers(config: t.Mapping[str, t.Any]) -> list[Provider]:
    """The providers whose identifying settings are given; the file source if none is.

    With no source configured the file source reads the bundled sample. Defaults never turn a
    source on: Meltano passes a block of them for every source of the Hub definition.
    """
    active = [provider for provider in Provider if provider.settings.is_configured(config)]
    return active or [Provider.FILES]
