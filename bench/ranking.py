"""Ranking benchmark: the evaluation table for every ranker, on three datasets, plus speed.

Usage::

    .venv/bin/python bench/ranking.py all            # everything below (about 5 minutes)
    .venv/bin/python bench/ranking.py yoochoose      # session-rec's YooChoose-100k split
    .venv/bin/python bench/ranking.py rees46         # the REES46 sample (view/cart/purchase, prices)
    .venv/bin/python bench/ranking.py generated      # the generated shop (evaluation)
    .venv/bin/python bench/ranking.py speed          # fit on 1M events, recommend latency, memory

Options: ``--events N`` (generated events, default 1,000,000), ``--items N`` (default 100,000),
``--max-sessions N`` (test sessions evaluated on the generated shop, default 1,500), ``--json
FILE`` (write every figure as JSON).

The generated shop (:func:`generate_shop`, seeded, so every run gives the same data):

* catalog: ``items`` products in 200 categories (``cat000`` ... with dotted names
  ``dept.cat``), 10 style clusters and up to 12 brands per category. Each item has a price
  (log-normal around its category's price level), a margin (price times its category's margin
  rate, 8-45%), a view *appeal* (log-normal; what makes people click) and a hidden *quality*
  (Beta(2, 5); what makes people buy), drawn independently: some eye-catching items rarely
  sell and some plain ones sell well.
* users: each has one to three preferred categories (Dirichlet weights), a preferred style per
  category, and a price sensitivity in [0, 1].
* sessions: a user's sessions are spread over 30 days. A session picks a category by the user's
  preferences and sometimes starts with a search (an item-less ``search`` event naming the
  category). Each next product view stays in the user's style with probability 0.7, else any
  style of the category; items are chosen in proportion to appeal. Each view is followed by
  ``add_to_cart`` with probability ``0.7 * quality * price_fit``, where ``price_fit`` falls
  with price for price-sensitive users; carted items are bought (``purchase``, with revenue)
  at the end of the session with probability 0.6. Sessions have 1 + Geometric(1/5) views.

So the funnel is view -> add_to_cart -> purchase, what people view and what they buy differ,
and a ranker that learns only from views optimises the wrong thing.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gc
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from target_personalize.engine import (
    EvaluationReport,
    EventStore,
    SessionRanker,
    default_rankers,
    evaluate,
    evaluate_store,
    interactions_from_store,
    read_session_file,
)
from target_personalize.engine.evaluation.splits import prepare_fixed_split

# The shared data set lies beside the repository (../shared/data).
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REES46 = DATA / "rees46-2019-Oct-head-sample.csv"
YOOCHOOSE = (
    DATA / "yoochoose-clicks-100k-train_full.txt",
    DATA / "yoochoose-clicks-100k-test.txt",
)
REES46_TYPES = {"view": "product_view", "cart": "add_to_cart", "purchase": "purchase"}
#: session-rec's own figures on the same YooChoose split (engine-anchors.md 2.5).
SESSION_REC = {
    "most popular": (0.0894, 0.0264),
    "V-SKNN": (0.6807, 0.3692),
    "STAN": (0.6768, 0.3700),
    "V-STAN": (0.6908, 0.3759),
}
OBJECTIVES = {"conversion": 1.0, "margin": 0.5}


# Data


def rees46_events(path: Path = REES46) -> Iterator[dict[str, Any]]:
    """Canonical events from the REES46 sample (rows with a wrong field count are dropped)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for number, row in enumerate(reader):
            if len(row) != 9:
                continue
            when, kind, product, category_id, code, brand, price, user, session = row
            yield {
                "source": "rees46",
                "event_id": str(number),
                "event_name": kind,
                "event_type": REES46_TYPES.get(kind, kind),
                "event_ts": when,
                "user_id": user,
                "session_id": session,
                "items": [
                    {
                        "item_id": product,
                        "category": code or category_id,
                        "brand": brand or None,
                        "price": float(price),
                        "quantity": 1,
                    }
                ],
                "revenue": float(price) if kind == "purchase" else None,
            }


def generate_shop(
    events: int = 1_000_000, items: int = 100_000, seed: int = 7
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Generate the shop described in the module docstring.

    Returns:
        (events as an Arrow table in the canonical schema, catalog records).
    """
    rng = np.random.default_rng(seed)
    rand = random.Random(seed)
    n_categories, n_styles = 200, 10
    category = rng.integers(0, n_categories, items)
    style = rng.integers(0, n_styles, items)
    brand = rng.integers(0, 12, items)
    price_level = rng.lognormal(3.5, 0.8, n_categories)
    margin_rate = rng.uniform(0.08, 0.45, n_categories)
    price = np.round(price_level[category] * rng.lognormal(0.0, 0.35, items), 2)
    margin = np.round(price * margin_rate[category], 2)
    appeal = rng.lognormal(0.0, 1.0, items)
    quality = rng.beta(2.0, 5.0, items)
    item_ids = [f"p{i:06d}" for i in range(items)]
    names = [f"dept{c // 20}.cat{c:03d}" for c in range(n_categories)]
    catalog = [
        {
            "item_id": item_ids[i],
            "title": f"{names[category[i]]} item {i}",
            "category": names[category[i]],
            "brand": f"brand{category[i]:03d}{brand[i]:02d}",
            "price": float(price[i]),
            "margin": float(margin[i]),
            "available": True,
        }
        for i in range(items)
    ]
    # Cumulative appeal per (category, style) and per category, for fast weighted choice.
    pools: dict[tuple[int, int], tuple[list[int], list[float]]] = {}
    order = np.lexsort((style, category))
    for key_items in np.split(
        order, np.flatnonzero(np.diff(category[order] * n_styles + style[order])) + 1
    ):
        if key_items.size:
            key = (int(category[key_items[0]]), int(style[key_items[0]]))
            pools[key] = (key_items.tolist(), np.cumsum(appeal[key_items]).tolist())
    by_category: dict[int, tuple[list[int], list[float]]] = {}
    for c in range(n_categories):
        members = np.flatnonzero(category == c)
        by_category[c] = (members.tolist(), np.cumsum(appeal[members]).tolist())

    def pick(pool: tuple[list[int], list[float]]) -> int:
        members, cumulative = pool
        return members[bisect.bisect_left(cumulative, rand.random() * cumulative[-1])]

    start = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    span = 30 * 86_400.0
    columns: dict[str, list[Any]] = {
        k: []
        for k in ("event_id", "event_type", "ts", "user", "session", "item", "search", "revenue")
    }
    produced = 0
    user = 0
    session_number = 0
    while produced < events:
        user += 1
        preferred = rng.choice(n_categories, size=rand.randint(1, 3), replace=False).tolist()
        weights = rng.dirichlet(np.ones(len(preferred))).tolist()
        styles = {c: rand.randrange(n_styles) for c in preferred}
        sensitivity = rand.random()
        sessions = 1 + int(rng.poisson(3))
        for moment in sorted(start + rand.random() * span for _ in range(sessions)):
            session_number += 1
            key = f"g{session_number}"
            c = rand.choices(preferred, weights)[0]
            t = moment
            if rand.random() < 0.3:
                columns["event_id"].append(f"{key}-s")
                columns["event_type"].append("search")
                columns["ts"].append(t)
                columns["user"].append(f"u{user}")
                columns["session"].append(key)
                columns["item"].append(None)
                columns["search"].append(names[c].split(".")[1])
                columns["revenue"].append(None)
                produced += 1
                t += rand.uniform(5, 30)
            views = 1
            while rand.random() > 0.2 and views < 40:
                views += 1
            carted: list[int] = []
            for v in range(views):
                wanted = styles[c] if rand.random() < 0.7 else rand.randrange(n_styles)
                pool = pools.get((c, wanted)) or by_category[c]
                item = pick(pool)
                for kind in ("product_view", "add_to_cart"):
                    if kind == "add_to_cart":
                        fit = math.exp(-sensitivity * price[item] / (2 * price_level[c]))
                        if rand.random() >= 0.7 * quality[item] * fit:
                            break
                        carted.append(item)
                    columns["event_id"].append(f"{key}-{v}-{kind}")
                    columns["event_type"].append(kind)
                    columns["ts"].append(t)
                    columns["user"].append(f"u{user}")
                    columns["session"].append(key)
                    columns["item"].append(item)
                    columns["search"].append(None)
                    columns["revenue"].append(None)
                    produced += 1
                    t += rand.uniform(20, 120)
            for item in carted:
                if rand.random() < 0.6:
                    columns["event_id"].append(f"{key}-buy-{item}")
                    columns["event_type"].append("purchase")
                    columns["ts"].append(t)
                    columns["user"].append(f"u{user}")
                    columns["session"].append(key)
                    columns["item"].append(item)
                    columns["search"].append(None)
                    columns["revenue"].append(float(price[item]))
                    produced += 1
                    t += rand.uniform(5, 30)
    item_struct = [
        []
        if item is None
        else [
            {
                "item_id": item_ids[item],
                "name": None,
                "category": names[category[item]],
                "brand": f"brand{category[item]:03d}{brand[item]:02d}",
                "variant": None,
                "price": float(price[item]),
                "quantity": 1.0,
                "position": None,
            }
        ]
        for item in columns["item"]
    ]
    table = pa.table(
        {
            "source": pa.array(["generated"] * len(columns["ts"])),
            "event_id": pa.array(columns["event_id"]),
            "event_name": pa.array(columns["event_type"]),
            "event_type": pa.array(columns["event_type"]),
            "event_ts": pa.array(
                [datetime.fromtimestamp(x, UTC).replace(tzinfo=None) for x in columns["ts"]],
                pa.timestamp("us"),
            ),
            "user_id": pa.array(columns["user"]),
            "session_id": pa.array(columns["session"]),
            "search_query": pa.array(columns["search"], pa.string()),
            "items": pa.array(item_struct),
            "revenue": pa.array(columns["revenue"], pa.float64()),
            "currency": pa.array(["EUR"] * len(columns["ts"])),
        }
    )
    return table, catalog


def shop_store(events: int, items: int, directory: Path) -> EventStore:
    """A DuckDB store holding a generated shop (through a Parquet batch file)."""
    began = time.perf_counter()
    table, catalog = generate_shop(events, items)
    generated = time.perf_counter() - began
    path = directory / "shop.parquet"
    pq.write_table(table, path)
    store = EventStore(f"duckdb:///{directory / 'shop.duckdb'}")
    result = store.load_event_files([str(path)], "parquet")
    store.load_items(catalog)
    print(
        f"generated {len(table):,} events ({result.loaded:,} stored, {result.rejected} rejected), "
        f"{len(catalog):,} items in {generated:.1f} s; stored in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return store


# Reports


def markdown(report: EvaluationReport, title: str) -> str:
    """The evaluation table as Markdown."""
    k = report.k
    lines = [
        f"#### {title}",
        "",
        f"| model | HR@{k} | MRR@{k} | conversion hit@{k} | value captured@{k} | coverage@{k} "
        "| fit s | ms/prediction | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for r in report.results:
        lines.append(
            f"| {r.name} | {fmt(r.hit_rate)} | {fmt(r.mrr)} | {fmt(r.conversion_hit_rate)} "
            f"| {fmt(r.value_captured)} | {fmt(r.coverage, 3)} | {r.fit_seconds:.2f} "
            f"| {r.predict_ms:.2f} | {r.predict_p99_ms:.2f} |"
        )
    split = report.split
    first = report.results[0]
    lines += [
        "",
        f"Split: train {split.train_events:,} item events / {split.train_sessions:,} sessions / "
        f"{split.items:,} items; test {split.test_events:,} events / {split.test_sessions:,} "
        f"sessions; {first.predictions:,} predictions, {first.conversion_predictions:,} with a "
        f"later add-to-cart or {report.key_conversion}; value = {split.value_kind}"
        + (f"; cut {split.cut:%Y-%m-%d %H:%M:%S} UTC" if split.cut else ""),
        "",
    ]
    return "\n".join(lines)


def ratios(report: EvaluationReport) -> str:
    """Goal checks against V-SKNN and the views-only model."""
    views = report.result("views-only item-kNN")
    vsknn = report.result("V-SKNN")
    lines = []
    for r in report.results:
        if not r.name.startswith("session ranker"):
            continue
        parts = [
            f"HR {r.hit_rate - vsknn.hit_rate:+.4f} and MRR {r.mrr - vsknn.mrr:+.4f} vs V-SKNN"
        ]
        if r.conversion_hit_rate is not None and views.conversion_hit_rate:
            parts.append(f"conversion hit x{r.conversion_hit_rate / views.conversion_hit_rate:.2f}")
        if r.value_captured is not None and views.value_captured:
            parts.append(f"value captured x{r.value_captured / views.value_captured:.2f}")
        lines.append(f"- {r.name}: " + ", ".join(parts) + " (vs views-only item-kNN)")
    return "\n".join(lines) + "\n"


def run_yoochoose(results: dict[str, Any]) -> str:
    """session-rec's YooChoose-100k split, with session-rec's own figures beside ours."""
    train, test = prepare_fixed_split(
        read_session_file(YOOCHOOSE[0]), read_session_file(YOOCHOOSE[1])
    )
    report = evaluate(train, test, default_rankers(), k=20, source="yoochoose-clicks-100k")
    results["yoochoose"] = report.as_dict()
    lines = [markdown(report, "YooChoose-100k (session-rec's example split, clicks only)")]
    lines += [
        "Beside session-rec's own run on the same split (engine-anchors.md 2.5):",
        "",
        "| model | our HR@20 | session-rec HR@20 | our MRR@20 | session-rec MRR@20 |",
        "|---|---|---|---|---|",
    ]
    for name, (hr, mrr) in SESSION_REC.items():
        try:
            ours = report.result(name)
            lines.append(
                f"| {name} | {ours.hit_rate:.4f} | {hr:.4f} | {ours.mrr:.4f} | {mrr:.4f} |"
            )
        except KeyError:
            lines.append(f"| {name} | - | {hr:.4f} | - | {mrr:.4f} |")
    ranker = report.result("session ranker")
    lines.append(f"| session ranker (ours) | {ranker.hit_rate:.4f} | - | {ranker.mrr:.4f} | - |")
    return "\n".join(lines) + "\n"


def run_rees46(results: dict[str, Any]) -> str:
    """The REES46 sample through the store, time split."""
    with EventStore("duckdb:///:memory:") as store:
        store.load_events(list(rees46_events()))
        report = evaluate_store(store, objectives=OBJECTIVES, k=20)
    results["rees46"] = report.as_dict()
    return (
        markdown(report, "REES46 sample (view / cart / purchase, prices)") + "\n" + ratios(report)
    )


def make_shop(directory: Path, events: int, items: int) -> str:
    """Generate the shop into ``directory`` in a child process; return the store URL.

    A child process, so that this process's memory figures show the ranker, not the generator.
    """
    subprocess.run(
        [
            sys.executable,
            __file__,
            "_make",
            str(directory),
            "--events",
            str(events),
            "--items",
            str(items),
        ],
        check=True,
    )
    return f"duckdb:///{directory / 'shop.duckdb'}"


def run_generated(
    results: dict[str, Any], url: str, events: int, items: int, max_sessions: int
) -> str:
    """The generated shop: evaluation of every ranker on a sample of the last day's sessions."""
    with EventStore(url) as store:
        report = evaluate_store(
            store, objectives=OBJECTIVES, k=20, max_sessions=max_sessions, test_days=1.0
        )
    results["generated"] = report.as_dict()
    title = (
        f"Generated shop ({events:,} events, {items:,} items; {max_sessions:,} test sessions "
        "of the last day sampled)"
    )
    return markdown(report, title) + "\n" + ratios(report)


def run_speed(results: dict[str, Any], url: str, directory: Path) -> str:
    """Fit time on the generated shop, recommend latency with its catalog, memory."""
    gc.collect()
    rss_before = _max_rss_mb()
    with EventStore(url) as store:
        began = time.perf_counter()
        ranker = SessionRanker().fit(store)
        fit_total = time.perf_counter() - began
        rss_fit = _max_rss_mb()
        began = time.perf_counter()
        data = interactions_from_store(store)
        read = time.perf_counter() - began
    tracemalloc.start()
    began = time.perf_counter()
    SessionRanker().fit(data)
    build = time.perf_counter() - began
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    meta, arrays = ranker.to_payload()
    del meta
    array_mb = sum(a.nbytes for a in arrays.values()) / 1e6
    path = ranker.save(directory / "model.npz")
    model_mb = path.stat().st_size / 1e6
    # Latency: live sessions of 1 to 6 product views, then one recommendation each; once as
    # is, once after gc.freeze() (what a serving process does after loading its model).
    rng = np.random.default_rng(1)
    counts = np.bincount(ranker.data.item, minlength=len(ranker.items))
    known = ranker.items.item_ids[np.flatnonzero(counts)]
    sessions = []
    for request in range(2_000):
        session = f"bench-{request}"
        for item in rng.choice(known, size=int(rng.integers(1, 7))):
            ranker.observe(
                {
                    "session_id": session,
                    "event_type": "product_view",
                    "items": [{"item_id": str(item)}],
                }
            )
        sessions.append(session)

    def timed(**options: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Wall-clock and CPU (this thread) milliseconds per request."""
        wall, cpu = [], []
        for session in sessions:
            began, began_cpu = time.perf_counter(), time.thread_time()
            ranker.recommend(session_id=session, k=20, **options)
            wall.append(time.perf_counter() - began)
            cpu.append(time.thread_time() - began_cpu)
        return np.array(wall) * 1000, np.array(cpu) * 1000

    millis, cpu_millis = timed()
    objective_millis, objective_cpu = timed(objectives=OBJECTIVES)
    gc.collect()
    gc.freeze()
    frozen_millis, _ = timed()
    gc.unfreeze()
    figures = {
        "events_in_store": int(ranker.data.ts.size),
        "item_events": len(data),
        "sessions": int(data.n_sessions),
        "items": len(data.items),
        "fit_seconds_from_store": fit_total,
        "read_seconds": read,
        "build_seconds": build,
        "build_traced_peak_mb": traced_peak / 1e6,
        "model_arrays_mb": array_mb,
        "model_file_mb": model_mb,
        "max_rss_mb_before_fit": rss_before,
        "max_rss_mb_after_fit": rss_fit,
        "recommend_ms_p50": float(np.percentile(millis, 50)),
        "recommend_ms_p99": float(np.percentile(millis, 99)),
        "recommend_objectives_ms_p50": float(np.percentile(objective_millis, 50)),
        "recommend_objectives_ms_p99": float(np.percentile(objective_millis, 99)),
        "recommend_cpu_ms_p50": float(np.percentile(cpu_millis, 50)),
        "recommend_cpu_ms_p99": float(np.percentile(cpu_millis, 99)),
        "recommend_objectives_cpu_ms_p99": float(np.percentile(objective_cpu, 99)),
        "load_average": os.getloadavg()[0],
        "recommend_frozen_gc_ms_p50": float(np.percentile(frozen_millis, 50)),
        "recommend_frozen_gc_ms_p99": float(np.percentile(frozen_millis, 99)),
    }
    results["speed"] = figures
    f = figures
    return (
        "#### Speed and memory (session ranker, generated shop)\n\n"
        "| figure | value |\n|---|---|\n"
        f"| item events / sessions / items | {f['item_events']:,} / {f['sessions']:,} / {f['items']:,} |\n"
        f"| fit from the store (SQL read + build) | {fit_total:.1f} s ({read:.1f} s read, {build:.1f} s build) |\n"
        f"| recommend k=20, wall clock p50 / p99 (load average {f['load_average']:.1f} on {os.cpu_count()} cores) | {f['recommend_ms_p50']:.2f} ms / {f['recommend_ms_p99']:.2f} ms |\n"
        f"| recommend k=20, CPU time p50 / p99 | {f['recommend_cpu_ms_p50']:.2f} ms / {f['recommend_cpu_ms_p99']:.2f} ms |\n"
        f"| recommend with objectives, CPU time p99 | {f['recommend_objectives_cpu_ms_p99']:.2f} ms |\n"
        f"| recommend with objectives, wall clock p50 / p99 | {f['recommend_objectives_ms_p50']:.2f} ms / {f['recommend_objectives_ms_p99']:.2f} ms |\n"
        f"| recommend k=20 after gc.freeze(), wall clock p50 / p99 | {f['recommend_frozen_gc_ms_p50']:.2f} ms / {f['recommend_frozen_gc_ms_p99']:.2f} ms |\n"
        f"| model arrays in memory / saved .npz | {array_mb:.0f} MB / {model_mb:.0f} MB |\n"
        f"| peak memory allocated while building (tracemalloc) | {f['build_traced_peak_mb']:.0f} MB |\n"
        f"| peak RSS of the benchmark process before / after the fit from the store | {rss_before:.0f} MB / {rss_fit:.0f} MB |\n"
    )


def _max_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "what", choices=["all", "yoochoose", "rees46", "generated", "speed", "_make", "_speed"]
    )
    parser.add_argument("directory", nargs="?", type=Path)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--max-sessions", type=int, default=1_500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.what == "_make":
        shop_store(args.events, args.items, args.directory).close()
        return
    if args.what == "_speed":
        speed: dict[str, Any] = {}
        url = f"duckdb:///{args.directory / 'shop.duckdb'}"
        print(run_speed(speed, url, args.directory))
        if args.json:
            args.json.write_text(json.dumps(speed, default=str), encoding="utf-8")
        return
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    parts: list[str] = []
    if args.what in ("all", "yoochoose"):
        parts.append(run_yoochoose(results))
    if args.what in ("all", "rees46"):
        parts.append(run_rees46(results))
    if args.what in ("all", "generated", "speed"):
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            url = make_shop(directory, args.events, args.items)
            if args.what in ("all", "generated"):
                parts.append(
                    run_generated(results, url, args.events, args.items, args.max_sessions)
                )
            if args.what in ("all", "speed"):
                # A fresh process, so that memory and latency show the ranker alone.
                out = directory / "speed.json"
                child = subprocess.run(
                    [sys.executable, __file__, "_speed", str(directory), "--json", str(out)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                parts.append(child.stdout)
                results["speed"] = json.loads(out.read_text(encoding="utf-8"))["speed"]
    print("\n".join(parts))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
