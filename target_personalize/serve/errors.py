"""Error answers that always serialize, whatever the client sent.

FastAPI's own 422 answer echoes the input and fails (a 500) when the input holds a float JSON
cannot carry (NaN, Infinity, 1e999 parsed as infinity); here such values become ``null``.
"""

from __future__ import annotations

import msgspec
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

__all__ = ["validation_error"]

_encode = msgspec.json.Encoder().encode


async def validation_error(request: Request, error: Exception) -> Response:
    """422 with FastAPI's ``detail`` list (each error's ``loc`` names the field)."""
    assert isinstance(error, RequestValidationError)
    detail = jsonable_encoder(error.errors())
    return Response(_encode({"detail": detail}), status_code=422, media_type="application/json")
