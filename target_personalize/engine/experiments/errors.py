"""The experiments' error: :class:`ExperimentError`, an :class:`~target_personalize.engine.EngineError`.

Raised for a bad experiment definition (which ``--variant`` or ``--traffic`` part, and why) and
for readout input that cannot be analysed (which column, and why).
"""

from __future__ import annotations

from target_personalize.engine import EngineError

__all__ = ["ExperimentError"]


class ExperimentError(EngineError, ValueError):
    """An experiment definition or readout input is invalid; the message says what and where."""
