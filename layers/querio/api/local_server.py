"""``querio serve``: the API on a stdlib HTTP server, through the same resolver as Lambda.

Each HTTP request becomes an API Gateway HTTP API (payload v2) event (:func:`build_event`)
with a JWT-authorizer claim set for the local user and tenant, and is answered by
``router.app.resolve(event, context)``, exactly as in AWS. Requests are handled concurrently,
one thread each (the resolver keeps its per-request state per thread: ``QuerioResolver``), so a
long upload does not hold up health checks or searches.

- Binds to loopback by default (there is no authentication in front of it).
- A body larger than the limit (``QUERIO_MAX_FILE_BYTES`` + multipart framing) is refused
  with 413 from its ``Content-Length`` before it is read, even before ``100 Continue``.
- One log line per request (method, path, status, bytes, milliseconds) on the
  ``querio.api.local_server`` logger.
- The service (database, embedding model) is warmed before "listening on ..." is printed,
  so the first query is as fast as the rest. Ctrl-C and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from querio.api import router
from querio.api.errors import REQUEST_ID_HEADER, error_payload
from querio.config import Settings
from querio.service import QuerioService

log = logging.getLogger(__name__)

LOCAL_USER = "local"
_DRAIN_LIMIT = 1024 * 1024  # after a refusal, discard at most this much of an unread body
_DRAIN_TIMEOUT_S = 1.0


@dataclass
class LocalContext:
    """Enough of a Lambda context for Powertools (and for handlers that log the request id)."""

    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    function_name: str = "querio-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:querio-local"
    memory_limit_in_mb: int = 0
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def build_event(method: str, target: str, headers: dict[str, str], body: bytes, *, source_ip: str,
                claims: dict[str, str], request_id: str | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event for one request.

    ``target`` is the request target (path and query); ``headers`` keys are lower-cased here
    (repeated headers joined with ``,`` as API Gateway does); the body is base64-encoded with
    ``isBase64Encoded: true`` (API Gateway does the same for binary bodies).
    """
    parts = urlsplit(target)
    path = unquote(parts.path) or "/"
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    now = dt.datetime.now(dt.UTC)
    rid = request_id or uuid.uuid4().hex
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "authorizer": {"jwt": {"claims": dict(claims), "scopes": None}},
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": lowered.get("user-agent", "")},
            "requestId": rid,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body),
    }
    if parts.query:
        query = parse_qs(parts.query, keep_blank_values=True)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";") if c.strip()]
    if body:
        event["body"] = base64.b64encode(body).decode("ascii")
    return event


#: GIL switch interval while serving (CPython's default is 5 ms). A request thread waking from I/O
#: waits for the GIL while an upload's thread runs pure Python (pypdf, chunking), up to one interval
#: per wake-up, and a health check wakes several times (socket, database, Redis). /api/health p99
#: during a 33 s upload, quiet machine (bench concurrency section): 108 ms at 5 ms, 22 ms at 1 ms.
SWITCH_INTERVAL_S = 0.001


class QuerioHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's listen backlog is 5: 16 clients connecting at once overflowed it and the
    # kernel reset one connection (bench concurrency section, 16 connections: 1 error)
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], *, max_body: int, claims: dict[str, str]) -> None:
        self.max_body = max_body
        self.claims = claims
        super().__init__(address, _Handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve with the GIL switch interval at ``SWITCH_INTERVAL_S``, restored afterwards."""
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            super().serve_forever(poll_interval)
        finally:
            sys.setswitchinterval(previous)


class _Handler(BaseHTTPRequestHandler):
    server: QuerioHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two sends; with Nagle on, each keep-alive response waited for the
    # client's delayed ACK (~40 ms). bench, 1 connection: p50 72 ms -> 28 ms, 13 -> 34 req/s.
    disable_nagle_algorithm = True
    server_version = "querio"
    timeout = 120  # seconds a connection may idle or trickle before it is dropped

    # --- one method for every verb ---------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def handle_expect_100(self) -> bool:
        # Refuse an oversized upload before the client sends it (nothing to drain).
        started = time.perf_counter()
        if self._refuse_body(drain=False):
            self._log(started, self._status, 0)
            return False
        return super().handle_expect_100()

    def _handle(self) -> None:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        if self._refuse_body(request_id):
            self._log(started, self._status, 0)
            return
        length = self._content_length()
        body = self.rfile.read(length) if length else b""
        event = build_event(self.command, self.path, dict(self.headers.items()), body, request_id=request_id,
                            source_ip=self.client_address[0], claims=self.server.claims)
        result = router.app.resolve(event, LocalContext(aws_request_id=request_id))
        self._write_result(result)
        self._log(started, int(result.get("statusCode", 500)), length)

    # --- body limits --------------------------------------------------------------------------------
    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            value = int(raw)
        except ValueError:
            return None
        return value if value >= 0 else None

    def _refuse_body(self, request_id: str | None = None, *, drain: bool = True) -> bool:
        """Answer 400/411/413 and return True when the body must not be read."""
        rid = request_id or uuid.uuid4().hex
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._send_error(HTTPStatus.LENGTH_REQUIRED, "length_required",
                             "send a Content-Length (chunked bodies are not accepted)", rid)
            return True
        length = self._content_length()
        if length is None:
            self._send_error(HTTPStatus.BAD_REQUEST, "validation_error", "invalid Content-Length header", rid)
            return True
        if length > self.server.max_body:
            self._send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
                             f"the request body is {length:,} bytes; the limit is {self.server.max_body:,}",
                             rid, details={"limit_bytes": self.server.max_body})
            if drain:
                self._drain(length)
            return True
        return False

    def _drain(self, length: int) -> None:
        """Read (a little of) an unread body so closing does not reset the connection before
        the client has read the 413."""
        try:
            self.connection.settimeout(_DRAIN_TIMEOUT_S)
            remaining = min(length, _DRAIN_LIMIT)
            while remaining > 0:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except (OSError, ValueError):
            pass

    # --- writing ------------------------------------------------------------------------------------
    _status = 0

    def _send_error(self, status: HTTPStatus, code: str, message: str, request_id: str, *,
                    details: Any = None) -> None:
        payload = json.dumps(error_payload(code, message, details=details, request_id=request_id),
                             separators=(",", ":")).encode()
        self._status = int(status)
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(REQUEST_ID_HEADER, request_id)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _write_result(self, result: dict[str, Any]) -> None:
        body_field = result.get("body") or ""
        if result.get("isBase64Encoded"):
            payload = base64.b64decode(body_field)
        else:
            payload = body_field.encode() if isinstance(body_field, str) else bytes(body_field)
        status = int(result.get("statusCode", 500))
        self.send_response(status)
        for name, value in (result.get("headers") or {}).items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, str(value))
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, str(value))
        for cookie in result.get("cookies") or ():
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(payload)

    # --- logging --------------------------------------------------------------------------------------
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per request is written by _log, with timing

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.address_string(), *args)

    def _log(self, started: float, status: int, size: int | None) -> None:
        log.info("%s %s %s %d %dB %.1fms", self.client_address[0], self.command, self.path, status, size or 0,
                 (time.perf_counter() - started) * 1000)


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = [str(info[4][0]) for info in infos]
    return bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses)


def warm(service: QuerioService) -> None:
    """Open the database and load the embedding model now, not on the first request."""
    service.health()
    service.embedder.embed_query("warm up")


def make_server(host: str, port: int, *, settings: Settings, tenant: str | None = None,
                user: str = LOCAL_USER) -> QuerioHTTPServer:
    """A bound (not yet serving) server; ``port=0`` picks a free port (see ``server_address``)."""
    claims = {"sub": user, settings.tenant_claim: tenant or settings.local_tenant}
    return QuerioHTTPServer((host, port), max_body=router.max_body_bytes(settings), claims=claims)


def serve(host: str = "127.0.0.1", port: int = 8000, *, service: QuerioService | None = None,
          tenant: str | None = None, user: str = LOCAL_USER,
          announce: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
    """Serve the API until Ctrl-C or SIGTERM.

    ``service`` defaults to ``querio.wiring.get_service()``; when given, the router uses it
    for every request. ``tenant`` defaults to ``settings.local_tenant``. ``announce`` gets
    the "listening on http://HOST:PORT" line once the service is warm.
    """
    if service is not None:
        router.set_service_factory(lambda: service)
    svc = router.current_service()
    if not is_loopback(host):
        log.warning("serving on %s: the local server has no authentication; everyone who can reach "
                    "this address acts as tenant %r", host, tenant or svc.settings.local_tenant)
    warm(svc)
    server = make_server(host, port, settings=svc.settings, tenant=tenant, user=user)
    previous = _install_sigterm()
    announce(f"listening on http://{host}:{server.server_port}")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if service is not None:
            router.set_service_factory(None)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _install_sigterm() -> Any:
    """Turn SIGTERM into KeyboardInterrupt (main thread only) so shutdown runs ``finally``."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)
