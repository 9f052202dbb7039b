"""Fake Mixpanel Raw Event Export API (``GET /api/2.0/export``), streaming JSONL."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ._server import ChunkedWriter, FakeHandler, FakeServer

__all__ = ["FakeMixpanel", "event_day"]

EXPORT_PATHS = frozenset({"/api/2.0/export", "/api/2.0/export/"})
GZIP_MIN_BYTES = 1400  # Mixpanel gzips only bodies larger than this
BLOCK_BYTES = 64 * 1024  # body data per chunk
MAX_LIMIT = 100_000
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MS_THRESHOLD = 1e11  # larger ``time`` values are milliseconds

LineSource = Callable[[date, date], Iterable[bytes]]


def event_day(time_value: float) -> date:
    """UTC date of a Mixpanel ``time`` value given in seconds or milliseconds."""
    seconds = time_value / 1000 if time_value > _MS_THRESHOLD else time_value
    return datetime.fromtimestamp(seconds, UTC).date()


class FakeMixpanel(FakeServer):
    """Fake of Mixpanel's raw export endpoint.

    Knobs (plain attributes, read on every request):
        bad_lines: ``{i: raw}`` inserts ``raw`` as an extra line before the i-th
            (0-based) event line of each response.
        terminated_early: Append a final ``terminated early`` line.
        drop_after: Abort the connection after that many event lines (no final
            zero-length chunk); applies only if the response reaches that count.
        drop_times: How many responses ``drop_after`` applies to (None: all);
            decremented per dropped response, so a retry can succeed.
        gzip_level: zlib level used when gzipping.
    """

    def __init__(
        self,
        events: Sequence[dict[str, Any]] | LineSource,
        username: str = "svc-user",
        secret: str = "svc-secret",
        project_id: str | int = "1234567",
        today: date | None = None,
    ) -> None:
        """Init.

        Args:
            events: Raw export objects (``{"event": ..., "properties": {"time": ...}}``),
                or a callable ``(from_date, to_date) -> Iterable[bytes]`` yielding
                pre-encoded JSON lines (no newline) for the inclusive UTC range.
            username: Service-account user name expected in Basic auth.
            secret: Service-account secret expected in Basic auth.
            project_id: Expected ``project_id`` query parameter.
            today: Latest allowed ``to_date``; defaults to the current UTC date.
        """
        super().__init__()
        self.username = username
        self.secret = secret
        self.project_id = str(project_id)
        self.today = today
        self.bad_lines: dict[int, bytes] = {}
        self.terminated_early = False
        self.drop_after: int | None = None
        self.drop_times: int | None = None
        self.gzip_level = 6
        self._source: LineSource | None = None
        self._events: list[tuple[date, str, float, bytes, dict[str, Any]]] = []
        if callable(events):
            self._source = events
        else:
            for ev in events:
                t = ev["properties"]["time"]
                line = json.dumps(ev, separators=(",", ":")).encode()
                self._events.append((event_day(t), ev["event"], t, line, ev))

    # -- request handling ----------------------------------------------------
    @staticmethod
    def _error(handler: FakeHandler, status: int, message: str) -> None:
        handler.send_json(status, {"request": handler.path, "error": message})

    def handle_request(self, handler: FakeHandler) -> None:
        """Serve ``GET /api/2.0/export``."""
        if handler.route not in EXPORT_PATHS:
            self._error(handler, 404, "Not found")
            return
        err = {"request": handler.path, "error": "Unable to authenticate request"}
        if not self.require_basic_auth(handler, self.username, self.secret, error=err):
            return
        q = handler.query
        if "project_id" not in q:
            self._error(handler, 400, "project_id is required for service account auth")
            return
        if q["project_id"] != self.project_id:
            self._error(handler, 400, f"invalid project_id: {q['project_id']}")
            return
        dates: list[date] = []
        for key in ("from_date", "to_date"):
            raw = q.get(key, "")
            try:
                if not _DATE_RE.match(raw):
                    raise ValueError(raw)
                dates.append(date.fromisoformat(raw))
            except ValueError:
                self._error(handler, 400, f"{key}: invalid date {raw!r}, expected yyyy-mm-dd")
                return
        from_date, to_date = dates
        today = self.today or datetime.now(UTC).date()
        if to_date > today:
            self._error(handler, 400, "to_date cannot be later than today")
            return
        if from_date > to_date:
            self._error(handler, 400, "from_date cannot be later than to_date")
            return
        names: set[str] | None = None
        if "event" in q:
            try:
                parsed = json.loads(q["event"])
                if not isinstance(parsed, list) or not all(isinstance(n, str) for n in parsed):
                    raise ValueError(parsed)
            except ValueError:
                self._error(handler, 400, "event must be a JSON array of event names")
                return
            names = set(parsed)
        limit: int | None = None
        if "limit" in q:
            try:
                limit = int(q["limit"])
                if not 0 < limit <= MAX_LIMIT:
                    raise ValueError(limit)
            except ValueError:
                self._error(handler, 400, f"limit must be an integer between 1 and {MAX_LIMIT}")
                return
        in_ms = q.get("time_in_ms", "").lower() in ("true", "1")
        blocks = self._blocks(self._lines(from_date, to_date, names, in_ms), limit)
        gzip_ok = "gzip" in handler.headers.get("Accept-Encoding", "").lower()
        self._stream(handler, blocks, gzip_ok)

    def _lines(
        self, start: date, end: date, names: set[str] | None, in_ms: bool
    ) -> Iterator[bytes]:
        if self._source is not None:
            for line in self._source(start, end):
                if names is None or json.loads(line).get("event") in names:
                    yield line
            return
        for day, name, t, line, ev in self._events:
            if start <= day <= end and (names is None or name in names):
                if in_ms and t <= _MS_THRESHOLD:
                    props = {**ev["properties"], "time": round(t * 1000)}
                    yield json.dumps({**ev, "properties": props}, separators=(",", ":")).encode()
                else:
                    yield line

    def _take_drop(self) -> int | None:
        with self._lock:
            if self.drop_after is None or self.drop_times == 0:
                return None
            if self.drop_times is not None:
                self.drop_times -= 1
            return self.drop_after

    def _blocks(self, lines: Iterable[bytes], limit: int | None) -> Iterator[bytes | None]:
        """Group lines into ~BLOCK_BYTES blocks; ``None`` means "drop the connection now"."""
        bad = dict(self.bad_lines)
        drop_after = self._take_drop()
        buf: list[bytes] = []
        size = count = 0
        for line in lines:
            if count in (limit, drop_after):
                break
            if bad and count in bad:
                buf.append(bad[count])
            buf.append(line)
            size += len(line) + 1
            count += 1
            if size >= BLOCK_BYTES:
                yield b"\n".join(buf) + b"\n"
                buf, size = [], 0
        if drop_after is not None and count >= drop_after:
            if buf:
                yield b"\n".join(buf) + b"\n"
            yield None
            return
        if self.terminated_early:
            buf.append(b"terminated early")
        if buf:
            yield b"\n".join(buf) + b"\n"

    def _stream(self, handler: FakeHandler, blocks: Iterator[bytes | None], gzip_ok: bool) -> None:
        head = b""
        dropped = False
        for block in blocks:  # look ahead just enough to decide on gzip
            if block is None:
                dropped = True
                break
            head += block
            if len(head) > GZIP_MIN_BYTES:
                break
        use_gzip = gzip_ok and len(head) > GZIP_MIN_BYTES
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        if use_gzip:
            handler.send_header("Content-Encoding", "gzip")
        handler.end_headers()
        compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31) if use_gzip else None
        writer = ChunkedWriter(handler.wfile, compressor)
        writer.write(head)
        if not dropped:
            for block in blocks:
                if block is None:
                    dropped = True
                    break
                writer.write(block)
        if dropped:
            writer.flush()
            handler.abort()
            return
        writer.close()
