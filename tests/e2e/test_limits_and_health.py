"""Payload limits answer with a clear status, and health sees the cache (issue 11, items 5 and 9).

The real router on a real service; Redis is a private ``redis-server`` started here, paused
(SIGSTOP: a stalled server that accepts but never answers) and stopped (a refused port)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from querio.api import local_server, router
from querio.config import Settings, load_settings
from querio.service import QuerioService
from querio.tiers import LAMBDA_INVOKE_PAYLOAD_BYTES, LAMBDA_REQUEST_FILE_BYTES
from querio.wiring import build_service
from tests.fixtures.events import ApiClient, http_event, resolve, upload_event

pytestmark = pytest.mark.e2e


# --- item 5: uploads over the deployment's real limit -----------------------------------------------


@pytest.fixture
def lambda_api(tmp_path: Path, pg_dsn: str) -> Iterator[ApiClient]:
    """The router configured as the CDK app configures the query function."""
    settings = load_settings(data_dir=tmp_path / "data", database_url=pg_dsn, redis_url=None,
                             max_request_file_bytes=LAMBDA_REQUEST_FILE_BYTES)
    service = build_service(settings)
    router.set_service_factory(lambda: service)
    try:
        yield ApiClient(service)
    finally:
        router.set_service_factory(None)
        service.documents.close()


def test_an_upload_over_the_lambda_payload_limit_is_413_pointing_to_upload_url(lambda_api: ApiClient) -> None:
    data = b"%PDF-1.4\n" + b"0" * (LAMBDA_REQUEST_FILE_BYTES + 1)  # just over: 4.4 MiB, 6 MB once base64-encoded
    event = upload_event(data, "report.pdf")
    assert len(event["body"]) + 65_536 > 0.98 * LAMBDA_INVOKE_PAYLOAD_BYTES  # what Lambda would receive
    reply = resolve(event)
    assert reply.status == 413, reply.json
    err = reply.json["error"]
    assert err["code"] == "payload_too_large"
    assert "POST /api/documents/upload-url" in err["message"]
    assert err["details"]["use"] == "POST /api/documents/upload-url"
    assert lambda_api.get("/api/documents").json["total"] == 0  # nothing recorded
    # the same file is within QUERIO_MAX_FILE_BYTES: upload-url is the way, and it is offered
    assert lambda_api.service.settings.max_file_bytes > len(data)


def test_an_upload_just_under_the_lambda_limit_is_read(lambda_api: ApiClient) -> None:
    data = b"%PDF-1.4\n" + b"0" * (LAMBDA_REQUEST_FILE_BYTES - 64 * 1024)
    reply = lambda_api.upload(data, "not-really.pdf")
    assert reply.status == 422 and reply.json["error"]["code"] != "payload_too_large"  # parsed, then refused


def test_the_local_server_keeps_its_own_larger_limit(tmp_path: Path, pg_dsn: str) -> None:
    local = load_settings(data_dir=tmp_path / "data", database_url=pg_dsn)
    assert local.request_file_limit == local.max_file_bytes > LAMBDA_REQUEST_FILE_BYTES
    assert router.max_body_bytes(local) > LAMBDA_REQUEST_FILE_BYTES


# --- item 9: health sees a stalled or refusing Redis ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    server = shutil.which("redis-server")
    if not server:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server must be installed in CI")
        pytest.skip("redis-server not installed")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, socket_timeout=0.5).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proc, port
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


def _service_on(settings_dir: Path, pg_dsn: str, redis_url: str) -> QuerioService:
    return build_service(load_settings(data_dir=settings_dir, database_url=pg_dsn, redis_url=redis_url))


def _health() -> tuple[int, dict[str, object]]:
    reply = resolve(http_event("GET", "/api/health", claims=None))
    return reply.status, reply.json


def test_health_reports_a_stalled_then_recovered_redis(private_redis: tuple[subprocess.Popen[bytes], int],
                                                       tmp_path: Path, pg_dsn: str) -> None:
    proc, port = private_redis
    service = _service_on(tmp_path / "data", pg_dsn, f"redis://127.0.0.1:{port}/0")
    assert service.cache.name == "redis"
    router.set_service_factory(lambda: service)
    try:
        assert _health() == (200, {"status": "ok", "database": True, "cache": "redis", "cache_status": "ok",
                                   "vector_backend": "pgvector"})
        os.kill(proc.pid, signal.SIGSTOP)  # accepts connections, never answers
        started = time.monotonic()
        status, body = _health()
        assert time.monotonic() - started < 5  # bounded by the cache timeout, not hung
        assert status == 200 and body["status"] == "degraded" and body["cache_status"] == "degraded"
        assert body["database"] is True
        os.kill(proc.pid, signal.SIGCONT)
        status, body = _health()
        assert status == 200 and body["status"] == "ok" and body["cache_status"] == "ok"  # no cooldown lag
    finally:
        router.set_service_factory(None)
        service.documents.close()


def test_health_reports_a_refusing_redis(tmp_path: Path, pg_dsn: str) -> None:
    service = _service_on(tmp_path / "data", pg_dsn, f"redis://127.0.0.1:{_free_port()}/0")  # nothing listens
    router.set_service_factory(lambda: service)
    try:
        status, body = _health()
        assert status == 200 and body["status"] == "degraded" and body["cache_status"] == "degraded"
    finally:
        router.set_service_factory(None)
        service.documents.close()


def test_head_health_through_the_local_server(api: ApiClient, api_settings: Settings) -> None:
    server = local_server.make_server("127.0.0.1", 0, settings=api_settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
        conn.request("HEAD", "/api/health")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.request("PUT", "/api/health")
        wrong = conn.getresponse()
        assert wrong.status == 405 and wrong.getheader("Allow") == "GET, HEAD"
        wrong.read()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
