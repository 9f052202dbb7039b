"""Pipeline throughput: tap (file source) -> target -> DuckDB, in RECORD and BATCH modes.

Generates N realistic canonical events (default 1,000,000: 50,000 visitors, sessions with views,
searches, carts and purchases, priced items) as JSON lines, then measures in one run:
  - RECORD mode: ``tap-clickstream | target-personalize`` into a fresh DuckDB store;
  - BATCH mode: the same with the tap's ``batch_config`` (Parquet files, bulk-loaded by DuckDB);
  - the SDK's ceiling: a minimal singer-sdk tap piping to a do-nothing target.
Prints events per second, the ratios, and each side's peak memory at two sizes.

    .venv/bin/python bench/pipeline.py [N]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _measure import measure_pipe  # noqa: E402

BIN = Path(sys.executable).parent
FLOW = [
    ("Product Viewed", "product_view"),
    ("Products Searched", "search"),
    ("Product Added", "add_to_cart"),
    ("Order Completed", "purchase"),
]


def generate(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w") as out:
        i = 0
        while i < n:
            visitor = rng.randrange(50_000)
            start = t0 + timedelta(seconds=rng.randrange(90 * 86_400))
            for step in range(rng.randint(1, 12)):
                if i >= n:
                    break
                roll = rng.random()
                name, kind = (
                    FLOW[0]
                    if roll < 0.8
                    else FLOW[1]
                    if roll < 0.9
                    else FLOW[2]
                    if roll < 0.97
                    else FLOW[3]
                )
                item = rng.randrange(20_000)
                record = {
                    "source": "file",
                    "event_id": f"ev-{i}",
                    "event_name": name,
                    "event_type": kind,
                    "event_ts": (start + timedelta(seconds=40 * step)).strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ"
                    ),
                    "user_id": f"user-{visitor}",
                    "session_id": f"s-{visitor}-{start:%j%H}",
                    "page_url": f"https://shop.example/p/{item}",
                    "page_path": f"/p/{item}",
                    "items": [
                        {
                            "item_id": f"sku-{item}",
                            "category": f"cat-{item % 200}",
                            "price": round(5 + item % 300 * 1.5, 2),
                            "quantity": 1,
                        }
                    ],
                    "revenue": round(5 + item % 300 * 1.5, 2) if kind == "purchase" else None,
                    "device_category": "mobile" if visitor % 3 else "desktop",
                    "country": "DE",
                    "properties": {"ab_test": "b" if visitor % 2 else "a"},
                }
                out.write(json.dumps(record) + "\n")
                i += 1


def run(n: int, workdir: Path) -> dict[str, object]:
    data = workdir / f"events-{n}.jsonl"
    generate(data, n)
    tap_config = workdir / "tap.json"
    tap_config.write_text(json.dumps({"files": {"paths": [str(data)]}}))
    batch_config = workdir / "tap-batch.json"
    batches = workdir / f"batches-{n}"
    batches.mkdir()
    batch_config.write_text(
        json.dumps(
            {
                "files": {"paths": [str(data)]},
                "batch_config": {
                    "encoding": {"format": "parquet", "compression": "none"},
                    "storage": {"root": batches.as_uri(), "prefix": "b-"},
                    "batch_size": 200_000,
                },
            }
        )
    )
    results: dict[str, object] = {"events": n}
    for mode, config in (("record", tap_config), ("batch", batch_config)):
        target_config = workdir / f"target-{mode}-{n}.json"
        target_config.write_text(
            json.dumps({"database_url": f"duckdb:///{workdir / f'{mode}-{n}.duckdb'}"})
        )
        run_, tap_mib, target_mib = measure_pipe(
            [str(BIN / "tap-clickstream"), "--config", str(config)],
            [str(BIN / "target-personalize"), "--config", str(target_config)],
        )
        results[mode] = (run_.rate(n), tap_mib, target_mib)
    minimal = str(ROOT / "bench/_minimal.py")
    run_, tap_mib, target_mib = measure_pipe(
        [sys.executable, minimal, "tap", str(data)], [sys.executable, minimal, "target"]
    )
    results["minimal"] = (run_.rate(n), tap_mib, target_mib)
    return results


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(size, Path(tmp)) for size in (n // 5, n)]
    print(
        f"{'events':>9} {'mode':<8} {'events/s':>10} {'vs minimal':>10} {'tap MiB':>8} {'target MiB':>10}"
    )
    for r in results:
        floor = r["minimal"][0]  # type: ignore[index]
        for mode in ("record", "batch", "minimal"):
            rate, tap_mib, target_mib = r[mode]  # type: ignore[misc]
            print(
                f"{r['events']:>9,} {mode:<8} {rate:>10,.0f} {rate / floor:>10.2f} {tap_mib:>8.0f} {target_mib:>10.0f}"
            )


if __name__ == "__main__":
    main()
