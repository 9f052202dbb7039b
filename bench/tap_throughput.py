"""Tap throughput: tap-clickstream reading a local Mixpanel-format export, against the SDK's ceiling.

Serves N raw Mixpanel events (default 500,000, over 10 days) from a loopback server that speaks
the export format, runs ``tap-clickstream`` to /dev/null, then a minimal singer-sdk tap that
emits the same canonical records from a file (no HTTP, no normalisation: the SDK's own cost).
Prints events per second, the time ratio, and peak memory at two sizes (to show it is flat).

    .venv/bin/python bench/tap_throughput.py [N]
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _measure import measure  # noqa: E402

from tests.fakes.mixpanel import FakeMixpanel  # noqa: E402

BIN = Path(sys.executable).parent
DAYS = 10
NAMES = [
    "Product Viewed",
    "Product Viewed",
    "Product Viewed",
    "Add to Cart",
    "Order Completed",
    "Page Viewed",
]


def build_lines(n: int, first_day: date) -> dict[date, list[bytes]]:
    by_day: dict[date, list[bytes]] = defaultdict(list)
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    step = DAYS * 86_400 / n
    for i in range(n):
        moment = start + timedelta(seconds=i * step)
        props = {
            "time": int(moment.timestamp()),
            "distinct_id": f"user-{i % 20_000}",
            "$insert_id": f"ins-{i}",
            "$current_url": f"https://shop.example/p/{i % 5000}",
            "$browser": "Chrome",
            "$os": "Mac OS X",
            "mp_country_code": "DE",
            "product_id": f"sku-{i % 5000}",
            "price": 10.0 + i % 90,
            "utm_source": "newsletter",
        }
        by_day[moment.date()].append(
            json.dumps({"event": NAMES[i % len(NAMES)], "properties": props}).encode()
        )
    return by_day


def run(n: int, workdir: Path) -> dict[str, float]:
    first_day = datetime.now(UTC).date() - timedelta(days=DAYS + 1)
    by_day = build_lines(n, first_day)

    def lines(start: date, end: date) -> Iterator[bytes]:
        day = start
        while day <= end:
            yield from by_day.get(day, [])
            day += timedelta(days=1)

    with FakeMixpanel(lines) as server:
        config = workdir / f"tap-{n}.json"
        config.write_text(
            json.dumps(
                {
                    "start_date": first_day.isoformat(),
                    "end_date": (first_day + timedelta(days=DAYS - 1)).isoformat() + "T23:59:59Z",
                    "mixpanel": {
                        "project_id": "1234567",
                        "username": "svc-user",
                        "secret": "svc-secret",
                        "api_url": server.url,
                        "window_days": 1,
                    },
                }
            )
        )
        records = workdir / f"records-{n}.jsonl"
        messages = workdir / f"messages-{n}.jsonl"
        with messages.open("wb") as out:
            measure([str(BIN / "tap-clickstream"), "--config", str(config)], stdout=out)
        with messages.open() as source, records.open("w") as sink:
            emitted = 0
            for line in source:
                message = json.loads(line)
                if message["type"] == "RECORD":
                    sink.write(json.dumps(message["record"]) + "\n")
                    emitted += 1
        assert emitted == n, f"the tap emitted {emitted} of {n} events"
        ours = measure([str(BIN / "tap-clickstream"), "--config", str(config)])
    minimal = measure([sys.executable, str(ROOT / "bench/_minimal.py"), "tap", str(records)])
    return {
        "events": n,
        "ours_s": ours.seconds,
        "ours_eps": ours.rate(n),
        "ours_mib": ours.peak_mib,
        "minimal_s": minimal.seconds,
        "minimal_eps": minimal.rate(n),
        "minimal_mib": minimal.peak_mib,
        "ratio": ours.seconds / minimal.seconds,
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(size, Path(tmp)) for size in (n // 5, n)]
    print(
        f"{'events':>9} {'tap-clickstream ev/s':>21} {'minimal SDK tap ev/s':>21} {'time ratio':>10} {'peak MiB (ours/minimal)':>24}"
    )
    for r in results:
        print(
            f"{r['events']:>9,} {r['ours_eps']:>21,.0f} {r['minimal_eps']:>21,.0f} {r['ratio']:>10.2f} "
            f"{r['ours_mib']:>12.0f} / {r['minimal_mib']:.0f}"
        )


if __name__ == "__main__":
    main()
