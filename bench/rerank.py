"""Second-stage benchmark: the session ranker against its LambdaRank re-ranking.

Usage::

    .venv/bin/python bench/rerank.py all          # everything below (several minutes)
    .venv/bin/python bench/rerank.py yoochoose    # HR@20 / MRR@20 on session-rec's split
    .venv/bin/python bench/rerank.py rees46       # conversion hit on the REES46 sample
    .venv/bin/python bench/rerank.py generated    # a generated shop: ranking and calibration

Options: ``--events N`` / ``--items N`` (generated shop, default 200,000 / 20,000),
``--param NAME=VALUE`` (a re-ranker argument, e.g. ``early_stopping_rounds=50``), ``--json FILE``
(every figure as JSON).

Each table gives fit time (the second stage's own training included) and prediction times,
with the machine's load (``uptime``), since the machine is shared. On data with conversions the
re-ranker's calibrated conversion model is checked on the held-out (test) sessions: expected
calibration error (ECE, 15 bins) of P(the session later carts or converts on a candidate) over
the first stage's 20 best candidates of every prediction, next to the observed rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from ranking import SESSION_REC, YOOCHOOSE, make_shop, markdown, rees46_events

from target_personalize.engine import (
    EventStore,
    Interactions,
    Objectives,
    RankerBase,
    RerankedSessionRanker,
    SessionRanker,
    evaluate,
    expected_calibration_error,
    interactions_from_store,
    read_session_file,
)
from target_personalize.engine.evaluation.splits import prepare_fixed_split, prepare_split
from target_personalize.engine.ranking.event_weights import CART_TYPES
from target_personalize.engine.ranking.features import candidate_features, first_stage
from target_personalize.engine.ranking.query import Query


def uptime() -> str:
    """The machine's ``uptime`` line (load averages)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


#: Constructor arguments of the re-ranker (``--param NAME=VALUE``).
PARAMS: dict[str, Any] = {}


def rankers() -> list[tuple[str, RankerBase, Objectives]]:
    """The first stage and the re-ranked model, as compared here."""
    return [
        ("session ranker", SessionRanker(random_state=0), Objectives()),
        (
            "session ranker + lambdarank",
            RerankedSessionRanker(random_state=0, **PARAMS),
            Objectives(),
        ),
    ]


def calibration(
    ranker: RerankedSessionRanker, test: Interactions, key_conversion: str, k: int = 20
) -> dict[str, Any]:
    """ECE of the conversion model on the held-out sessions (see the module docstring)."""
    model = ranker.calibrated_model
    if model is None:
        return {"ece": None, "note": "too few conversions in training for a conversion model"}
    converting = np.array(
        [t == key_conversion or t in CART_TYPES for t in test.event_types] or [False]
    )
    kind_map = np.array([ranker._kind_index(t) for t in test.event_types] or [0], np.int64)
    sessions, starts = test.session_bounds()
    visitors = test.visitors[test.session_visitor]
    data = ranker.data
    probabilities, outcomes = [], []
    for s in range(starts.size - 1):
        start, end = int(starts[s]), int(starts[s + 1])
        items = test.item[start:end].astype(np.int64)
        kinds = test.kind[start:end]
        history = ranker._history_rows(str(visitors[int(sessions[s])]))
        for i in range(1, end - start):
            query = Query(
                items=items[:i],
                kinds=kind_map[kinds[:i]],
                ts=test.ts[start : start + i],
                history_items=data.item[history].astype(np.int64),
                history_kinds=data.kind[history].astype(np.int64),
                history_ts=data.ts[history],
                now=float(test.ts[start + i - 1]),
            )
            found = first_stage(ranker, query, k, None, Objectives())
            if found.items.size == 0:
                continue
            later = np.unique(items[i:][converting[kinds[i:]]])
            probabilities.append(
                model.predict(candidate_features(ranker, ranker._stats, query, found))
            )
            outcomes.append(np.isin(found.items, later))
    p = np.concatenate(probabilities) if probabilities else np.zeros(0)
    y = np.concatenate(outcomes) if outcomes else np.zeros(0, np.bool_)
    return {
        "ece": expected_calibration_error(p, y),
        "candidates": int(p.size),
        "converting": int(y.sum()),
        "mean_probability": float(p.mean()) if p.size else None,
        "observed_rate": float(y.mean()) if y.size else None,
    }


def compare(
    train: Interactions,
    test: Interactions,
    title: str,
    results: dict[str, Any],
    key: str,
    **options: Any,
) -> str:
    """Evaluate both models, and the calibration when there are conversions."""
    chosen = rankers()
    report = evaluate(train, test, chosen, k=20, **options)
    results[key] = report.as_dict()
    second = chosen[1][1]
    assert isinstance(second, RerankedSessionRanker)
    lines = [markdown(report, title), f"Second-stage training: {second.train_seconds:.1f} s."]
    if second.calibrated_model is not None:
        figures = calibration(second, test, report.key_conversion)
        results[key]["calibration"] = figures
        lines.append(
            f"Conversion model on held-out sessions: ECE {figures['ece']:.4f} over "
            f"{figures['candidates']:,} candidates ({figures['converting']:,} converting; mean "
            f"P {figures['mean_probability']:.4f}, observed rate {figures['observed_rate']:.4f})."
        )
    else:
        lines.append("No conversion model: too few converting candidates in training.")
    lines.append(f"Load: `{uptime()}`\n")
    return "\n".join(lines) + "\n"


def run_yoochoose(results: dict[str, Any]) -> str:
    """session-rec's YooChoose-100k split."""
    train, test = prepare_fixed_split(
        read_session_file(YOOCHOOSE[0]), read_session_file(YOOCHOOSE[1])
    )
    text = compare(
        train,
        test,
        "YooChoose-100k (session-rec's split): first stage vs LambdaRank second stage",
        results,
        "yoochoose",
        source="yoochoose-clicks-100k",
    )
    hr, mrr = SESSION_REC["V-STAN"]
    return text + f"session-rec's V-STAN on the same split: HR@20 {hr:.4f}, MRR@20 {mrr:.4f}.\n"


def run_rees46(results: dict[str, Any]) -> str:
    """The REES46 sample, time split as ``personalize evaluate`` makes it."""
    with EventStore("duckdb:///:memory:") as store:
        store.load_events(list(rees46_events()))
        data = interactions_from_store(store)
    train, test, cut = prepare_split(data)
    return compare(
        train, test, "REES46 sample (view / cart / purchase)", results, "rees46", cut=cut
    )


def run_generated(results: dict[str, Any], events: int, items: int) -> str:
    """A generated shop (bench/ranking.py's generator), last day as test."""
    with tempfile.TemporaryDirectory() as name:
        url = make_shop(Path(name), events, items)
        with EventStore(url) as store:
            data = interactions_from_store(store)
    train, test, cut = prepare_split(data)
    return compare(
        train,
        test,
        f"Generated shop ({events:,} events, {items:,} items)",
        results,
        "generated",
        cut=cut,
        max_sessions=1_500,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["all", "yoochoose", "rees46", "generated"])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a re-ranker argument, e.g. early_stopping_rounds=50 (value read as JSON)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for pair in args.param:
        name, _, value = pair.partition("=")
        PARAMS[name] = json.loads(value)
    results: dict[str, Any] = {}
    parts = [f"Load at start: `{uptime()}`\n"]
    if args.what in ("all", "yoochoose"):
        parts.append(run_yoochoose(results))
    if args.what in ("all", "rees46"):
        parts.append(run_rees46(results))
    if args.what in ("all", "generated"):
        parts.append(run_generated(results, args.events, args.items))
    print("\n".join(parts))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
