"""Fake Amplitude Export API (``GET /api/2/export``): zip of gzipped JSONL files."""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ._server import FakeHandler, FakeServer

__all__ = ["FakeAmplitude", "upload_hour"]

EXPORT_PATH = "/api/2/export"
_HOUR_RE = re.compile(r"^\d{8}T\d{2}$")
_HOUR = timedelta(hours=1)
MAX_SPAN_HOURS = 365 * 24
TOO_LARGE_MESSAGE = (
    b"Raw data export too large: the requested range exceeds the 4GB limit. "
    b"Shorten the time range and try again."
)
TIMEOUT_MESSAGE = b"Export timed out: the amount of data in the requested range is too large."


def upload_hour(value: str) -> datetime:
    """Naive UTC hour of an Amplitude timestamp (``YYYY-MM-DD HH:MM:SS[.ffffff]`` or ISO)."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.replace(minute=0, second=0, microsecond=0)


class FakeAmplitude(FakeServer):
    """Fake of Amplitude's export endpoint.

    Knobs (plain attributes, read on every request):
        bad_lines: ``{uuid: raw}`` inserts ``raw`` as an extra line before that
            event in its member file.
        files_per_hour, max_hours, timeout_hours: as in the constructor.
    """

    def __init__(
        self,
        events: Sequence[dict[str, Any]],
        api_key: str = "amp-key",
        secret_key: str = "amp-secret",
        app_id: int = 187520,
        files_per_hour: int = 2,
        max_hours: int | None = None,
        timeout_hours: int | None = None,
    ) -> None:
        """Init.

        Args:
            events: Export event objects with at least ``uuid``, ``event_type``,
                ``event_time`` and ``server_upload_time``.
            api_key: Expected Basic-auth user name.
            secret_key: Expected Basic-auth password.
            app_id: Project id used in member file names.
            files_per_hour: Member files per upload hour (events dealt round-robin).
            max_hours: Requests spanning more hours get 400 (export > 4GB).
            timeout_hours: Requests spanning more hours get 504.
        """
        super().__init__()
        self.api_key = api_key
        self.secret_key = secret_key
        self.app_id = app_id
        self.files_per_hour = files_per_hour
        self.max_hours = max_hours
        self.timeout_hours = timeout_hours
        self.bad_lines: dict[str, bytes] = {}
        self._by_hour: dict[datetime, list[tuple[str, bytes]]] = {}
        for ev in events:
            line = json.dumps(ev, separators=(",", ":")).encode()
            hour = upload_hour(ev["server_upload_time"])
            self._by_hour.setdefault(hour, []).append((ev["uuid"], line))

    def handle_request(self, handler: FakeHandler) -> None:
        """Serve ``GET /api/2/export``."""
        if handler.route != EXPORT_PATH:
            handler.send_body(404, b"Not found", "text/plain")
            return
        err = {"error": "Invalid API key or secret key"}
        key, secret = self.api_key, self.secret_key
        if not self.require_basic_auth(handler, key, secret, status=403, error=err):
            return
        bounds: list[datetime] = []
        for key in ("start", "end"):
            raw = handler.query.get(key, "")
            try:
                if not _HOUR_RE.match(raw):
                    raise ValueError(raw)
                bounds.append(datetime.strptime(raw, "%Y%m%dT%H"))
            except ValueError:
                message = f"Invalid {key}: {raw!r}, expected YYYYMMDDTHH"
                handler.send_body(400, message.encode(), "text/plain")
                return
        start, end = bounds
        if end < start:
            handler.send_body(400, b"end must not be before start", "text/plain")
            return
        span = (end - start) // _HOUR + 1  # inclusive hours
        if span > MAX_SPAN_HOURS:
            handler.send_body(400, b"Time range must not exceed 365 days", "text/plain")
            return
        if self.max_hours is not None and span > self.max_hours:
            handler.send_body(400, TOO_LARGE_MESSAGE, "text/plain")
            return
        if self.timeout_hours is not None and span > self.timeout_hours:
            handler.send_body(504, TIMEOUT_MESSAGE, "text/plain")
            return
        hours = sorted(h for h in self._by_hour if start <= h <= end)
        if not hours:
            handler.send_body(404, b"Raw data files were not found.", "text/plain")
            return
        handler.send_body(200, self._archive(hours), "application/zip")

    def _archive(self, hours: list[datetime]) -> bytes:
        bad = dict(self.bad_lines)
        per_hour = max(1, self.files_per_hour)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for hour in hours:
                files: list[list[bytes]] = [[] for _ in range(per_hour)]
                for i, (uuid, line) in enumerate(self._by_hour[hour]):
                    member = files[i % per_hour]
                    if uuid in bad:
                        member.append(bad[uuid])
                    member.append(line)
                for n, lines in enumerate(files, start=1):
                    if not lines:
                        continue
                    app = self.app_id
                    name = f"{app}/{app}_{hour:%Y-%m-%d}_{hour.hour}#{n}.json.gz"
                    info = zipfile.ZipInfo(name, date_time=hour.timetuple()[:6])
                    zf.writestr(info, gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
        return out.getvalue()
