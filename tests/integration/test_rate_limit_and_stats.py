"""Rate limits, popular queries, daily active users and a failing Redis, on the real
redis-server (127.0.0.1:6379, db 15, a unique key prefix per test; required in CI) and on
the in-process MemoryCache, which must behave the same."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from querio import observability
from querio.adapters.memory_cache import MemoryCache
from querio.adapters.redis_cache import RedisCache
from querio.api import router
from querio.config import load_settings
from querio.models import Principal, QueryRequest, SearchRequest
from querio.service import QuerioService
from querio.wiring import build_service
from tests.fixtures.events import ApiClient
from tests.fixtures.pdfs import make_text_pdf

pytestmark = pytest.mark.integration
DEAD_URL = "redis://127.0.0.1:1/0"  # loopback port 1 refuses connections


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = f"test-{uuid.uuid4().hex}:"
    yield p
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=p + "*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["redis", "memory"])
def cache(request: pytest.FixtureRequest) -> RedisCache | MemoryCache:
    if request.param == "memory":
        return MemoryCache()
    return RedisCache(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("prefix"))


# --- the limiter ------------------------------------------------------------------------------------


def test_limiter_is_atomic_under_concurrency(cache: RedisCache | MemoryCache) -> None:
    limit, threads, per_thread = 37, 20, 5
    barrier = threading.Barrier(threads)

    def burst(_: int) -> list[tuple[bool, int]]:
        barrier.wait()
        return [cache.rate_limit("rl:t:u", limit, 60) for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        results = [r for rs in pool.map(burst, range(threads)) for r in rs]
    allowed = [r for r in results if r[0]]
    denied = [r for r in results if not r[0]]
    assert len(allowed) == limit
    assert len(denied) == threads * per_thread - limit
    assert all(1 <= retry <= 60 for _, retry in denied)
    assert all(retry == 0 for _, retry in allowed)


def test_limiter_window_resets_and_keys_are_independent(cache: RedisCache | MemoryCache) -> None:
    assert [cache.rate_limit("rl:a", 2, 1)[0] for _ in range(3)] == [True, True, False]
    assert cache.rate_limit("rl:b", 2, 1)[0]  # another user has their own budget
    time.sleep(2.1)
    assert cache.rate_limit("rl:a", 2, 1) == (True, 0)
    assert cache.rate_limit("rl:c", 0, 60) == (True, 0)  # 0 = no limit


def test_popular_members_and_distinct_counts(cache: RedisCache | MemoryCache) -> None:
    for member, times in {"alpha": 3, "beta": 1, "gamma": 2}.items():
        for _ in range(times):
            cache.count_member("pop:t", member, ttl_s=60, keep=2)
    top = cache.top_members("pop:t", 10)
    assert top is not None and top[0] == ("alpha", 3) and len(top) <= 2
    assert cache.top_members("pop:other", 10) == []
    for user in ["u1", "u2", "u1", "u3"]:
        cache.add_distinct("dau:t", user, ttl_s=60)
    assert cache.count_distinct("dau:t") == 3
    assert cache.count_distinct("dau:other") == 0


def test_a_dead_redis_fails_open_and_counts() -> None:
    cache = RedisCache(DEAD_URL, timeout_s=0.2)
    before = observability.counters["CacheErrors"]
    started = time.perf_counter()
    assert cache.rate_limit("rl:x", 1, 60) == (True, 0)
    assert cache.rate_limit("rl:x", 1, 60) == (True, 0)  # still open (circuit breaker: no wait)
    assert cache.top_members("pop:x", 5) is None and cache.count_distinct("dau:x") is None
    cache.count_member("pop:x", "q", ttl_s=60, keep=5)
    cache.add_distinct("dau:x", "u", ttl_s=60)
    assert time.perf_counter() - started < 2
    assert cache.errors >= 6 and observability.counters["CacheErrors"] >= before + 6


def test_rediss_urls_use_tls_and_pass_ssl_options_through() -> None:
    cache = RedisCache("rediss://:token@cache.example.internal:6379/0?ssl_cert_reqs=required")
    pool = cache._client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["password"] == "token"
    assert pool.connection_kwargs["socket_timeout"] == 0.25


# --- through the router and the service -------------------------------------------------------------


def _service(tmp_path: Path, pg_dsn: str, cache: RedisCache | MemoryCache, **overrides: object) -> QuerioService:
    settings = load_settings(data_dir=tmp_path / "data", database_url=pg_dsn, redis_url=None, **overrides)
    service = build_service(settings)
    service.cache = cache
    return service


@pytest.fixture
def client_for(tmp_path: Path, pg_dsn: str) -> Iterator[object]:
    built: list[QuerioService] = []

    def make(cache: RedisCache | MemoryCache, **overrides: object) -> ApiClient:
        service = _service(tmp_path, pg_dsn, cache, **overrides)
        built.append(service)
        router.set_service_factory(lambda: service)
        return ApiClient(service)

    yield make
    router.set_service_factory(None)
    for s in built:
        s.close()


def test_rate_limit_is_429_with_retry_after(client_for, cache: RedisCache | MemoryCache) -> None:
    api = client_for(cache, rate_limit_per_minute=3)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    me = api.as_caller({"sub": "user-1", "custom:tenant_id": tenant})
    assert [me.get("/api/documents").status for _ in range(3)] == [200, 200, 200]
    reply = me.get("/api/documents")
    assert reply.status == 429 and reply.error_code == "rate_limited"
    assert 1 <= int(reply.headers["retry-after"]) <= 60
    assert reply.json["error"]["details"]["retry_after_s"] == int(reply.headers["retry-after"])
    # another user of the same tenant, and the public health check, are not affected
    assert api.as_caller({"sub": "user-2", "custom:tenant_id": tenant}).get("/api/documents").status == 200
    assert api.get("/api/health", claims=None).status == 200
    # no identity is still 401, never 429
    assert api.get("/api/documents", claims=None).status == 401


def test_rate_limit_zero_is_off(client_for, cache: RedisCache | MemoryCache) -> None:
    api = client_for(cache, rate_limit_per_minute=0)
    assert {api.get("/api/documents").status for _ in range(10)} == {200}


def test_popular_queries_and_daily_users_per_tenant(client_for, cache: RedisCache | MemoryCache) -> None:
    api = client_for(cache)
    a1 = api.as_caller({"sub": "alice", "custom:tenant_id": "tenant-a"})
    a2 = api.as_caller({"sub": "anna", "custom:tenant_id": "tenant-a"})
    b1 = api.as_caller({"sub": "bob", "custom:tenant_id": "tenant-b"})
    for caller, text in [(a1, "Foo  BAR"), (a1, "foo bar"), (a2, "foo bar"), (a1, "baz"), (b1, "secret of b")]:
        reply = caller.post("/api/search", {"query": text, "mode": "text"})
        assert reply.status == 200, reply.json
    stats_a = a1.get("/api/stats").json
    assert stats_a["popular_queries"][:2] == [{"query": "foo bar", "count": 3}, {"query": "baz", "count": 1}]
    assert stats_a["daily_active_users"] == 2
    assert all("secret" not in q["query"] for q in stats_a["popular_queries"])
    stats_b = b1.get("/api/stats").json
    assert stats_b["popular_queries"] == [{"query": "secret of b", "count": 1}]
    assert stats_b["daily_active_users"] == 1


# --- Redis failing mid-test ---------------------------------------------------------------------------


def _pause_redis(url: str, ms: int) -> None:
    """Write commands block for ``ms`` (a slow Redis): ours time out at 0.25 s. WRITE, not ALL,
    keeps the blast radius small on a shared server."""
    redis.Redis.from_url(url).execute_command("CLIENT", "PAUSE", ms, "WRITE")


def test_redis_down_or_slow_mid_test_answers_still_come(tmp_path: Path, pg_dsn: str, redis_url: str,
                                                        prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=prefix, cooldown_s=0.0)
    service = _service(tmp_path, pg_dsn, cache)
    try:
        me = Principal(tenant_id="tenant-r", user_id="u")
        pdf = make_text_pdf(["Volcanoes erupt molten basalt lava when magma pressure rises."],
                            title="Volcanoes")
        assert service.ingest(me, pdf, "volcano.pdf").status == "ingested"
        request = SearchRequest(query="basalt lava", k=3)
        first = service.search(me, request)
        assert first.results and not first.cached
        assert service.search(me, request).cached  # Redis up: the result cache answers

        errors_before = observability.counters["CacheErrors"]
        _pause_redis(redis_url, 1500)
        started = time.perf_counter()
        slow = service.search(me, SearchRequest(query="lava pressure", k=3))  # not cached yet
        assert slow.results and not slow.cached
        assert time.perf_counter() - started < 15, "each cache call is bounded by its 0.25 s timeout"
        time.sleep(1.6)

        service.cache = RedisCache(DEAD_URL, timeout_s=0.2)  # and now Redis is gone entirely
        down = service.search(me, SearchRequest(query="molten magma", k=3))
        assert down.results and not down.cached
        answer = service.query(me, QueryRequest(query="what do volcanoes erupt?"))
        assert answer.sources
        assert service.stats(me).daily_active_users is None  # unknown, not an error
        assert observability.counters["CacheErrors"] > errors_before
        assert cache.errors > 0
    finally:
        service.close()


def test_a_failed_generation_bump_never_serves_a_stale_result(tmp_path: Path, pg_dsn: str, redis_url: str,
                                                              prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=prefix, cooldown_s=0.0)
    service = _service(tmp_path, pg_dsn, cache)
    try:
        me = Principal(tenant_id="tenant-s", user_id="u")
        doc = service.ingest(me, make_text_pdf(["Quokkas live on Rottnest Island near Perth."]), "q.pdf").document
        assert doc is not None
        request = SearchRequest(query="quokkas rottnest", k=3, mode="text")
        assert service.search(me, request).results
        assert service.search(me, request).cached
        _pause_redis(redis_url, 800)
        service.delete_document(me, doc.id)  # the generation bump times out
        time.sleep(0.9)  # Redis is back, holding the result cached before the delete
        after = service.search(me, request)
        assert after.results == [] and not after.cached
    finally:
        service.close()
