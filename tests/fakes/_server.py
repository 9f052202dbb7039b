"""Shared base for the local fake HTTP servers used in tests and benchmarks."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import socket
import sys
import threading
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = ["ChunkedWriter", "FakeHandler", "FakeServer", "basic_auth_matches"]


def basic_auth_matches(header: str | None, username: str, password: str) -> bool:
    """Tell whether an ``Authorization`` header carries the given Basic credentials.

    Args:
        header: Raw ``Authorization`` header value, or None when absent.
        username: Expected user name.
        password: Expected password.

    Returns:
        True when the header is ``Basic base64(username:password)``.
    """
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded == f"{username}:{password}"


class ChunkedWriter:
    """Write an HTTP/1.1 chunked body, optionally through a streaming compressor."""

    def __init__(self, wfile: BufferedIOBase, compressor: Any | None = None) -> None:
        """Init.

        Args:
            wfile: Unbuffered socket writer of the handler.
            compressor: Optional ``zlib`` compress object applied to every block.
        """
        self._wfile = wfile
        self._compressor = compressor

    def _chunk(self, data: bytes) -> None:
        if data:  # a zero-length chunk would end the body
            self._wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

    def write(self, data: bytes) -> None:
        """Send one block of body data as (at most) one chunk."""
        self._chunk(self._compressor.compress(data) if self._compressor else data)

    def flush(self) -> None:
        """Push out everything buffered in the compressor (sync flush)."""
        if self._compressor:
            self._chunk(self._compressor.flush(zlib.Z_SYNC_FLUSH))

    def close(self) -> None:
        """Finish the compressor and send the terminating zero-length chunk."""
        if self._compressor:
            self._chunk(self._compressor.flush())
        self._wfile.write(b"0\r\n\r\n")


class FakeHandler(BaseHTTPRequestHandler):
    """Request handler delegating to the owning :class:`FakeServer`."""

    protocol_version = "HTTP/1.1"
    fake: FakeServer  # set on a per-server subclass

    route: str
    query: dict[str, str]

    def do_GET(self) -> None:
        """Dispatch a GET request."""
        parts = urlsplit(self.path)
        self.route = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.fake._dispatch(self)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Record the request (with its status) and start the response."""
        parts = urlsplit(getattr(self, "path", "") or "")
        headers = getattr(self, "headers", None)
        self.fake._record(
            {
                "method": getattr(self, "command", None),
                "path": parts.path,
                "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
                "headers": {
                    k: v
                    for k, v in (headers.items() if headers else [])
                    if k.lower() != "authorization"
                },
                "status": code,
            }
        )
        super().send_response(code, message)

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with a ``Content-Length``.

        Args:
            status: HTTP status code.
            body: Response body.
            content_type: ``Content-Type`` unless given in ``headers``.
            headers: Extra response headers.
        """
        extra = dict(headers or {})
        self.send_response(status)
        if not any(k.lower() == "content-type" for k in extra):
            self.send_header("Content-Type", content_type)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``obj`` as a JSON response."""
        self.send_body(status, json.dumps(obj).encode(), "application/json", headers)

    def abort(self) -> None:
        """Drop the connection abruptly (no terminating chunk, no more requests)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # client went away mid-response
        super().handle_error(request, client_address)


class FakeServer:
    """Threaded local HTTP server on ``127.0.0.1:0``, usable as a context manager.

    Subclasses implement :meth:`handle_request`. Every request is recorded in
    :attr:`requests`; responses queued with :meth:`fail_next` are served first.
    """

    def __init__(self) -> None:
        """Init (the server starts in :meth:`start` / ``__enter__``)."""
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._failures: deque[tuple[int, dict[str, str], bytes]] = deque()
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> Self:
        """Start serving in a daemon thread and return self."""
        if self._httpd is None:
            handler = type("Handler", (FakeHandler,), {"fake": self})
            self._httpd = _QuietServer(("127.0.0.1", 0), handler)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- recording and failure injection ---------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of recorded requests.

        Each entry has ``method``, ``path``, ``query`` (dict[str, str]),
        ``headers`` (without ``Authorization``) and ``status``.
        """
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Queue a canned response served (in FIFO order, once) before normal handling.

        Args:
            status: HTTP status code, e.g. 429.
            headers: Response headers, e.g. ``{"Retry-After": "1"}``.
            body: Response body.
        """
        with self._lock:
            self._failures.append((status, dict(headers or {}), body))

    def _dispatch(self, handler: FakeHandler) -> None:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            status, headers, body = failure
            handler.send_body(status, body, "text/plain", headers)
            return
        self.handle_request(handler)

    # -- helpers for subclasses ------------------------------------------
    def require_basic_auth(
        self,
        handler: FakeHandler,
        username: str,
        password: str,
        *,
        status: int = 401,
        error: Any = None,
    ) -> bool:
        """Check Basic auth; on mismatch send an error response.

        Args:
            handler: Current request handler.
            username: Expected user name.
            password: Expected password.
            status: Status sent on mismatch.
            error: JSON body sent on mismatch (default ``{"error": ...}``).

        Returns:
            True when the credentials match (nothing sent), else False.
        """
        if basic_auth_matches(handler.headers.get("Authorization"), username, password):
            return True
        body = error if error is not None else {"error": "Invalid credentials"}
        handler.send_json(status, body, {"WWW-Authenticate": 'Basic realm="fake"'})
        return False

    def handle_request(self, handler: FakeHandler) -> None:
        """Serve one request; override in subclasses."""
        handler.send_json(404, {"error": f"unknown path {handler.route}"})
