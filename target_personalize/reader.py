"""A fast Singer message reader that keeps JSON numbers as Python floats."""

from __future__ import annotations

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import InvalidInputLine
from typing_extensions import override

_decode = msgspec.json.Decoder().decode


class FloatMsgSpecReader(MsgSpecReader):
    """msgspec's speed without the SDK reader's float-to-Decimal hook.

    Prices and revenues are analysed as floats by the engine, so decoding them as Decimal
    only to convert them back would cost time on every record.
    """

    @override
    def deserialize_json(self, line: str) -> dict:  # type: ignore[type-arg]
        try:
            message = _decode(line)
        except msgspec.DecodeError as error:
            raise InvalidInputLine(
                f"Unable to parse a Singer message as JSON: {line[:200]}"
            ) from error
        if not isinstance(message, dict):
            raise InvalidInputLine(f"A Singer message is not a JSON object: {line[:200]}")
        return message
