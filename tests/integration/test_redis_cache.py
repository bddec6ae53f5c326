"""RedisCache against the real redis-server on 127.0.0.1:6379 (required in CI)."""

import uuid

import pytest
import redis

from querio.adapters.redis_cache import RedisCache

pytestmark = pytest.mark.integration


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
