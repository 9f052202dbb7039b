"""The sources the tap can read, and which settings block turns each one on."""

from __future__ import annotations

import enum
import typing as t

from tap_clickstream.sources.amplitude.streams import AmplitudeEventsStream
from tap_clickstream.sources.catalog.streams import ItemsStream
from tap_clickstream.sources.files.streams import FileEventsStream
from tap_clickstream.sources.ga4.streams import GA4EventsStream, GA4ReportRowsStream
from tap_clickstream.sources.mixpanel.streams import MixpanelEventsStream
from tap_clickstream.sources.snowplow.streams import SnowplowEventsStream

if t.TYPE_CHECKING:
    from tap_clickstream.streams import EventStream

__all__ = ["Provider", "active_providers"]


class Provider(enum.Enum):
    """A source, with its stream classes; its value is the settings block that activates it."""

    MIXPANEL = "mixpanel", (MixpanelEventsStream,)
    AMPLITUDE = "amplitude", (AmplitudeEventsStream,)
    GA4 = "ga4", (GA4EventsStream, GA4ReportRowsStream)
    SNOWPLOW = "snowplow", (SnowplowEventsStream,)
    FILES = "files", (FileEventsStream,)
    CATALOG = "catalog", (ItemsStream,)

    def __init__(self, key: str, streams: tuple[type[EventStream], ...]) -> None:
        self.key = key
        self.streams = streams


def active_providers(config: t.Mapping[str, t.Any]) -> list[Provider]:
    """The providers whose settings block is set; the file source (bundled sample) if none is."""
    active = [provider for provider in Provider if config.get(provider.key)]
    return active or [Provider.FILES]
