"""The tap's Singer message writer: msgspec encoding, stdout flushed per batch of records."""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

__all__ = ["EventMessageWriter"]


class EventMessageWriter(MsgSpecWriter):
    """The SDK's msgspec writer, without a flush (a system call) after every RECORD message.

    Records wait in stdout's buffer until it fills or another message comes: SCHEMA, STATE and
    BATCH messages flush it, so a STATE message never reaches the target before the records
    it covers, and the target sees each window's records as soon as the window is done.
    """

    @override
    def write_message(self, message: Message) -> None:
        sys.stdout.buffer.write(self.format_message(message))
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()
