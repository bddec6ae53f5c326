"""RedisCache against the real redis-server on 127.0.0.1:6379 (required in CI)."""

import os
import uuid

import pytest
import redis

from querio.adapters.redis_cache import RedisCache

pytestmark = pytest.mark.integration
REDIS_URL = os.environ.get("QUERIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis must be running in CI (see .ci/run)")
        pytest.skip("no redis-server on 127.0.0.1:6379")
    return REDIS_URL


def test_round_trip_ttl_and_generation_counter(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    cache = RedisCache(redis_url, prefix=prefix)
    cache.set("k", b"v", ttl_s=30)
    assert cache.get("k") == b"v"
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl(prefix + "k") <= 30
    assert cache.get_int("gen") == 0 and cache.incr("gen") == 1
    cache.delete("k", "gen")
    assert cache.get("k") is None and cache.get_int("gen") == 0


def test_a_dead_redis_degrades_to_misses_quickly() -> None:
    # Port 1 on loopback refuses connections: the cache must answer "miss", never raise.
    cache = RedisCache("redis://127.0.0.1:1/0", timeout_s=0.2)
    cache.set("k", b"v", ttl_s=10)
    assert cache.get("k") is None
    assert cache.incr("gen") == -1 and cache.get_int("gen") == -1  # -1 = result caching off
    assert cache.errors >= 3
