"""The HTTP API and dashboard over the engine: ``personalize serve``.

:func:`create_app` builds the ASGI app (FastAPI) from :class:`ServeSettings`; API keys are in
:mod:`target_personalize.serve.auth`. See docs/serving.md.
"""

from __future__ import annotations

from target_personalize.serve.app import ServeConfigError, create_app
from target_personalize.serve.auth import KeyRing
from target_personalize.serve.settings import ServeSettings

__all__ = ["KeyRing", "ServeConfigError", "ServeSettings", "create_app"]
