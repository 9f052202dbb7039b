"""The engine's public surface: everything in __all__ exists, once, in ruff's sorted order."""

from __future__ import annotations

import ast
from pathlib import Path

import target_personalize.engine as engine

ENGINE = Path(engine.__file__).parent


#: The public API, as issue 11 found it: moving the engine's modules must not change it.
PUBLIC = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_EVENT_WEIGHTS",
    "DEFAULT_WINDOW",
    "EVENT_COLUMNS",
    "ITEM_COLUMNS",
    "LIFT_PRIOR_UNITS",
    "VSKNN",
    "CalibratedConversionModel",
    "Contribution",
    "ConversionModel",
    "DiscoveredFunnel",
    "DiscoveredStep",
    "EngineError",
    "EvaluationReport",
    "EventStore",
    "Funnel",
    "FunnelError",
    "FunnelStep",
    "ImplicitSignal",
    "Interactions",
    "InvalidEventError",
    "ItemTable",
    "LoadResult",
    "ModelFormatError",
    "ModelNotFittedError",
    "ModelResult",
    "MostPopular",
    "Objectives",
    "PathStat",
    "RankerBase",
    "RankerError",
    "Reject",
    "RerankedSessionRanker",
    "ScoredItem",
    "SessionRanker",
    "SignalBucket",
    "SplitInfo",
    "StoreError",
    "StoreSummary",
    "TimeBin",
    "TimeToConvert",
    "UnsupportedDatabaseError",
    "ViewsItemKNN",
    "check_random_state",
    "coerce_event",
    "coerce_item",
    "compute_event_weights",
    "default_rankers",
    "discover_funnel",
    "evaluate",
    "evaluate_store",
    "expected_calibration_error",
    "explicit_funnel",
    "interactions_from_store",
    "load_ranker",
    "model_path",
    "ndcg_at_k",
    "per_user_split",
    "precision_at_k",
    "read_batch_files",
    "read_session_file",
    "read_split_file",
    "refresh_ranker",
    "render_report",
    "save_ranker",
    "write_report",
]


def test_the_public_names_are_pinned() -> None:
    assert engine.__all__ == PUBLIC


def test_all_names_exist_and_are_unique() -> None:
    assert len(engine.__all__) == len(set(engine.__all__))
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_everything_imported_into_the_package_is_exported() -> None:
    tree = ast.parse((ENGINE / "__init__.py").read_text())
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("target_personalize")
        for alias in node.names
    }
    assert imported == set(engine.__all__)


def test_the_engine_never_imports_singer_sdk() -> None:
    modules = sorted(ENGINE.rglob("*.py"))
    assert len(modules) > len(list(ENGINE.glob("*.py")))  # the subpackages are searched too
    for module in modules:
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.startswith("singer_sdk") for n in names), module
