"""The HTML report: self-contained, and it renders in headless Chromium with the key numbers."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import zlib
from datetime import datetime
from pathlib import Path

import pytest

from target_personalize.engine import (
    EventStore,
    discover_funnel,
    explicit_funnel,
    render_report,
    write_report,
)
from tests.engine.conftest import Journeys

from .test_funnels import discovery_set

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def report_file(tmp_path: Path, journeys: Journeys) -> Path:
    with EventStore("duckdb:///:memory:") as store:
        discovery_set(journeys).load(store)
        found = discover_funnel(store, "purchase", min_share=0.5)
        named = explicit_funnel(store, ["page_view", "add_to_cart", "purchase"])
    page = render_report(found, explicit=named, generated_at=datetime(2024, 5, 1, 12))
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_report_is_self_contained(report_file: Path) -> None:
    page = report_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for outside in ("src=", "href=", "url(", "@import", "<link", "http:", "https:", "//cdn"):
        assert outside not in page, outside
    assert page.count('<svg class="chart') == 4  # discovered, explicit, weights, time to convert


def test_report_escapes_names(tmp_path: Path, journeys: Journeys) -> None:
    journeys.add("a", "u", (0, "<script>alert(1)</script>"), (1, "purchase"))
    with EventStore("duckdb:///:memory:") as store:
        journeys.load(store)
        path = write_report(tmp_path / "r.html", discover_funnel(store, "purchase"))
    page = path.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def chromium() -> str:
    """The Chromium binary; skip (fail in CI) when it is missing."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is required in CI (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); CI runs this test")
    raise AssertionError  # unreachable


def run_chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"
    completed = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_report_renders_in_chromium(report_file: Path, tmp_path: Path) -> None:
    dom = run_chromium(tmp_path, "--dump-dom", report_file.as_uri())
    # the inline script found every chart laid out with bars of non-zero height
    assert re.search(r'<html[^>]*data-charts-rendered="4"', dom), dom[:300]
    text = re.sub(r"<[^>]+>", " ", dom)
    text = re.sub(r"\s+", " ", text)
    for number in (
        "8 SESSIONS",
        "4 CONVERTED",
        "50.00% CONVERSION RATE",
        "2.5 min MEDIAN TIME TO CONVERT",  # 150 s
        "5 · 100.0%",  # page_view bar: 5 sessions
        "2 · 40.0%",  # add_to_cart and purchase bars
        "▼ drop-off 40.0% (2)",  # page_view -> product_view
        "▼ drop-off 33.3% (1)",  # product_view -> add_to_cart
    ):
        assert number.lower() in text.lower(), number


def test_report_screenshot_shows_the_bars(report_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", report_file.as_uri())
    width, height, pixels = read_png(shot.read_bytes())
    assert (width, height) == (1200, 900)
    bar = sum(
        1 for p in pixels if abs(p[0] - 0x2F) < 8 and abs(p[1] - 0x6F) < 8 and abs(p[2] - 0xDE) < 8
    )
    # the funnel bars alone cover well over 10,000 pixels at this size
    assert bar > 10_000, bar


def read_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        pixels.extend((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels
