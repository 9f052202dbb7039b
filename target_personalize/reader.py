"""A fast Singer message reader: floats stay floats, canonical RECORD lines skip the SDK."""

from __future__ import annotations

import contextlib
import gc
import typing as t
from collections import Counter

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import InvalidInputLine
from singer_sdk.singerlib.encoding.base import SingerMessageType
from typing_extensions import override

from target_personalize.engine.store.typed_records import TypedEvent

_decode = msgspec.json.Decoder().decode


class _RecordMessage(msgspec.Struct, gc=False):
    """A Singer message read as a RECORD of canonical events (other fields ignored).

    Untracked by the garbage collector (``gc=False``), as the typed events it holds: decoded
    JSON holds no reference cycles, and hundreds of thousands of tracked objects would make
    every collection longer.
    """

    type: str
    stream: str | None = None
    record: TypedEvent | None = None  # type: ignore[valid-type]


_decode_record = msgspec.json.Decoder(_RecordMessage).decode

#: Takes a canonical event of a stream read on the fast path (with its line number); returns
#: False when the stream or the event needs the SDK's path instead.
FastRecordHandler = t.Callable[[str, t.Any, int], bool]

#: Container allocations between two young-generation collections while lines are read
#: (Python's default is 700: a RECORD stream allocates millions of short-lived objects, and
#: each collection would also walk everything the batch being built holds).
LOADING_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def loading_gc() -> t.Iterator[None]:
    """Garbage collection tuned for reading a stream of lines, restored afterwards.

    What exists when reading starts (modules, the SDK, the store's connection) is frozen out
    of collections (:func:`gc.freeze`), and young collections run less often: loading builds
    no reference cycles of its own, so collections only cost time. Cycles still get
    collected, less often.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(LOADING_GEN0_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class FloatMsgSpecReader(MsgSpecReader):
    """msgspec's speed without the SDK reader's float-to-Decimal hook.

    Prices and revenues are analysed as floats by the engine, so decoding them as Decimal
    only to convert them back would cost time on every record.

    With a :data:`FastRecordHandler` set (the target sets one), each line is first decoded
    as a RECORD of typed canonical events; one whose values all have their column's JSON type
    goes to the handler, and only other lines (SCHEMA, STATE, records with values to convert
    or reject) take the SDK's path. Either way records keep their order.
    """

    def __init__(self) -> None:
        super().__init__()
        #: The number of the line being processed (1 for the first).
        self.line_number = 0
        self.fast_records: FastRecordHandler | None = None

    @override
    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],  # type: ignore[type-arg]
    ) -> t.Counter[str]:
        fast = self.fast_records
        stats: Counter[str] = Counter()
        fast_records = 0
        record_type = SingerMessageType.RECORD
        source = file_input or self.default_input
        # Bytes where the input has them (stdin): msgspec reads UTF-8 itself, faster than
        # Python decodes each line to text first.
        lines: t.Iterable[str | bytes] = getattr(source, "buffer", source)
        with loading_gc():
            for number, line in enumerate(lines, 1):
                self.line_number = number
                if fast is not None and self._took_fast(fast, line, number):
                    fast_records += 1
                    continue
                line_dict = self.deserialize_json(line)
                self.assert_line_requires(line_dict, requires={"type"})
                kind = line_dict["type"]
                if callback := callbacks.get(kind):
                    callback(line_dict)
                else:
                    self._process_unknown_message(line_dict)
                stats[kind] += 1
        stats[record_type] += fast_records
        return stats

    def _took_fast(self, fast: FastRecordHandler, line: str | bytes, number: int) -> bool:
        """Whether ``fast`` took the line as a RECORD of plain canonical events."""
        try:
            message = _decode_record(line)
        except msgspec.ValidationError:
            return False  # not a RECORD of plain canonical events: the SDK's path
        except msgspec.DecodeError:
            self.deserialize_json(line)  # raises the SDK's error for a line not JSON
            raise
        return (
            message.type == SingerMessageType.RECORD
            and message.record is not None
            and message.stream is not None
            and fast(message.stream, message.record, number)
        )

    @override
    def deserialize_json(self, line: str | bytes) -> dict:  # type: ignore[type-arg]
        try:
            message = _decode(line)
        except msgspec.DecodeError as error:
            raise InvalidInputLine(
                f"Unable to parse a Singer message as JSON: {_shown(line)}"
            ) from error
        if not isinstance(message, dict):
            raise InvalidInputLine(f"A Singer message is not a JSON object: {_shown(line)}")
        return message


def _shown(line: str | bytes) -> str:
    """The start of a line, as text, for an error message."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text[:200]
