"""The files source over corrupt, truncated and binary files: never a crash, always counted.

Each example holds a damaged file next to a good one: the sync ends without error, the good
file's events are emitted, a STATE is written, and the damaged file is either read (and
remembered) or named in a skipped-record line (and read again next time).
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.profiles import EXAMPLES, FUZZ
from tests.tap_clickstream.helpers import run_tap

STREAM = "file_events"
ROWS = [
    {"event_id": f"r-{n}", "event_name": "page_view", "event_ts": f"2024-03-01T00:0{n}:00Z"}
    for n in range(5)
]


def jsonl() -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in ROWS)


def csv() -> bytes:
    lines = ["event_id,event_name,event_ts"] + [
        f"{r['event_id']},{r['event_name']},{r['event_ts']}" for r in ROWS
    ]
    return ("\n".join(lines) + "\n").encode()


def parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(ROWS), sink)
    return sink.getvalue()


ORIGINALS = {
    "jsonl": jsonl,
    "jsonl.gz": lambda: gzip.compress(jsonl()),
    "csv": csv,
    "csv.gz": lambda: gzip.compress(csv()),
    "parquet": parquet,
}


@st.composite
def damaged_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name's suffix and content: a good file truncated, overwritten, or noise."""
    suffix = draw(st.sampled_from(sorted(ORIGINALS)))
    data = bytearray(ORIGINALS[suffix]())
    how = draw(st.sampled_from(["truncate", "flip", "insert", "noise", "header-only"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif how == "noise":
        data = bytearray(draw(st.binary(max_size=512)))
    else:  # a gzip or Parquet magic, then garbage
        magic = b"PAR1" if suffix == "parquet" else b"\x1f\x8b\x08\x00"
        data = bytearray(magic + draw(st.binary(max_size=128)))
    return suffix, bytes(data)


def sync(root: Path, *, batch: bool) -> Any:
    config: dict[str, Any] = {"files": {"paths": [str(root / "data" / "*")]}}
    if batch:
        (root / "batches").mkdir(exist_ok=True)
        config["batch_config"] = {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": (root / "batches").as_uri()},
        }
    return run_tap(config)


def check(suffix: str, data: bytes, *, batch: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        (root / "data" / f"a-damaged.{suffix}").write_bytes(data)
        (root / "data" / "b-good.jsonl").write_text(
            json.dumps({"event_id": "good", "event_name": "purchase", "event_ts": "2024-03-02"})
            + "\n"
        )
        result = sync(root, batch=batch)
        assert result.error is None, result.error
        if not batch:
            assert "good" in {record["event_id"] for record in result.records(STREAM)}
        else:
            assert any(message["type"] == "BATCH" for message in result.messages)
        assert result.states, "no STATE"
        files = {Path(p).name for p in result.states[-1]["bookmarks"][STREAM]["files"]}
        assert "b-good.jsonl" in files
        named = any(f"a-damaged.{suffix}" in line for line in result.logs if "Skipped" in line)
        assert f"a-damaged.{suffix}" in files or named, result.logs[-5:]


@given(damaged=damaged_file())
@FUZZ
def test_damaged_files_in_record_mode(damaged: tuple[str, bytes]) -> None:
    check(*damaged, batch=False)


@given(damaged=damaged_file())
@settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
def test_damaged_files_in_batch_mode(damaged: tuple[str, bytes]) -> None:
    check(*damaged, batch=True)
