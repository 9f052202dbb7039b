"""Run the target: ``python -m target_personalize``."""

from __future__ import annotations

from target_personalize.target import TargetPersonalize

TargetPersonalize.cli()
