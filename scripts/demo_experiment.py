"""The demo's A/B test: serve the sample's visitors in an experiment, then stop the server.

Usage: ``python scripts/demo_experiment.py EXPERIMENT_ID [VISITORS]`` with
``PERSONALIZE_DATABASE_URL`` naming the store (the experiment must exist there). Starts
``personalize serve`` on a free loopback port, asks it for recommendations for up to
``VISITORS`` (default 300) visitors of the store (each is assigned to a variant, answered with
the variant's list and a ``rec_id``; the server records the exposure and the list), and stops
it, so ``personalize experiment report`` can read the store. No event is made up: the sample's
conversions all happened before these exposures, so they feed CUPED's pre-exposure figures.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

from target_personalize.engine import EventStore

BIN = Path(sys.executable).parent


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        result: dict[str, object] = json.load(answer)
        return result


def main(experiment_id: str, limit: int) -> None:
    """Serve ``limit`` of the store's visitors in ``experiment_id`` and say how they split."""
    url = os.environ["PERSONALIZE_DATABASE_URL"]
    with EventStore(url) as store:
        visitors = [
            str(row[0])
            for row in store.query(
                "SELECT DISTINCT coalesce(user_id, anonymous_id) AS v FROM events "
                "WHERE coalesce(user_id, anonymous_id) IS NOT NULL ORDER BY v LIMIT %s",
                [limit],
            )
        ]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "personalize"), "serve", "--port", str(port), "--log-level", "warning"]
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("personalize serve did not start") from None
                time.sleep(0.2)
        variants: Counter[str] = Counter()
        for visitor in visitors:
            query = urllib.parse.urlencode(
                {
                    "anonymous_id": visitor,
                    "session_id": f"demo-{visitor}",
                    "experiment": experiment_id,
                    "k": 10,
                }
            )
            answer = _get(f"{base}/v1/recommendations?{query}")
            variants[str(answer["variant_id"])] += 1
        print(  # noqa: T201 - the demo's output
            f"Served {len(visitors)} visitors in {experiment_id}: "
            + ", ".join(f"{v} {n}" for v, n in sorted(variants.items()))
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
