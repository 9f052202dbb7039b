"""The personalization engine: event store, funnel mining and ranking. Never imports singer_sdk.

Store: :class:`EventStore`. Funnels: :func:`discover_funnel`, :func:`explicit_funnel`,
:func:`write_report`. Ranking: :class:`SessionRanker` (and the baselines,
:class:`RerankedSessionRanker`, its LambdaRank second stage),
:func:`refresh_ranker`, :func:`evaluate_store`. Errors derive from :class:`EngineError`.

This module is the engine's public API; the subpackages ``store``, ``funnel``, ``ranking``
and ``evaluation`` hold its implementation (mapped in ``docs/design.md``).
"""

from __future__ import annotations

from target_personalize.engine.evaluation.metrics import (
    ndcg_at_k,
    precision_at_k,
)
from target_personalize.engine.evaluation.replay import (
    default_rankers,
    evaluate,
    evaluate_store,
)
from target_personalize.engine.evaluation.results import (
    EvaluationReport,
    ModelResult,
    SplitInfo,
)
from target_personalize.engine.evaluation.splits import (
    per_user_split,
    read_split_file,
)
from target_personalize.engine.exceptions import (
    EngineError,
    FunnelError,
    InvalidEventError,
    ModelFormatError,
    ModelNotFittedError,
    RankerError,
    StoreError,
    UnsupportedDatabaseError,
)
from target_personalize.engine.funnel.discovery import (
    LIFT_PRIOR_UNITS,
    Contribution,
    DiscoveredFunnel,
    DiscoveredStep,
    ImplicitSignal,
    PathStat,
    SignalBucket,
    compute_event_weights,
    discover_funnel,
)
from target_personalize.engine.funnel.explicit import (
    DEFAULT_WINDOW,
    Funnel,
    FunnelStep,
    explicit_funnel,
)
from target_personalize.engine.funnel.report import (
    render_report,
    write_report,
)
from target_personalize.engine.funnel.shared import (
    TimeBin,
    TimeToConvert,
)
from target_personalize.engine.ranking.baselines import (
    VSKNN,
    MostPopular,
    ViewsItemKNN,
)
from target_personalize.engine.ranking.contract import (
    RankerBase,
    ScoredItem,
    check_random_state,
)
from target_personalize.engine.ranking.conversion_model import (
    CalibratedConversionModel,
    expected_calibration_error,
)
from target_personalize.engine.ranking.event_weights import (
    DEFAULT_EVENT_WEIGHTS,
)
from target_personalize.engine.ranking.interactions import (
    Interactions,
    ItemTable,
    interactions_from_store,
    read_session_file,
)
from target_personalize.engine.ranking.model_io import (
    load_ranker,
    model_path,
    refresh_ranker,
    save_ranker,
)
from target_personalize.engine.ranking.objectives import (
    ConversionModel,
    Objectives,
)
from target_personalize.engine.ranking.rerank import (
    RerankedSessionRanker,
)
from target_personalize.engine.ranking.session_ranker import (
    SessionRanker,
)
from target_personalize.engine.store.columns import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
)
from target_personalize.engine.store.event_store import (
    DEFAULT_DATABASE_URL,
    EventStore,
    LoadResult,
    Reject,
    StoreSummary,
    read_batch_files,
)
from target_personalize.engine.store.records import (
    coerce_event,
    coerce_item,
)

__all__ = [
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
