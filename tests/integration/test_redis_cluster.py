"""RedisCache in cluster mode (the enterprise tier's ElastiCache) against a real 3-node cluster."""

from __future__ import annotations

import uuid

import pytest

from querio.adapters.redis_cache import RedisCache

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_cache(redis_cluster_url: str) -> RedisCache:
    return RedisCache(redis_cluster_url, cluster=True, prefix=f"t{uuid.uuid4().hex[:8]}:")


def test_keys_spread_over_slots_round_trip_and_multi_key_delete(cluster_cache: RedisCache) -> None:
    keys = [f"res:{i}" for i in range(40)]  # 40 keys land on all three primaries
    for k in keys:
        cluster_cache.set(k, k.encode(), 60)
    assert [cluster_cache.get(k) for k in keys] == [k.encode() for k in keys]
    cluster_cache.delete(*keys)  # DEL across slots: must be split per slot, not CROSSSLOT
    assert all(cluster_cache.get(k) is None for k in keys)
    assert cluster_cache.errors == 0


def test_rate_limit_counters_and_stats_are_atomic_per_key(cluster_cache: RedisCache) -> None:
    results = [cluster_cache.rate_limit("rl:tenant:user", 2, 60) for _ in range(3)]
    assert [allowed for allowed, _ in results] == [True, True, False]
    assert 0 < results[2][1] <= 60
    assert cluster_cache.incr("gen:tenant") == 1 and cluster_cache.get_int("gen:tenant") == 1
    cluster_cache.count_member("pop:tenant", "what is x", ttl_s=60, keep=10)
    cluster_cache.count_member("pop:tenant", "what is x", ttl_s=60, keep=10)
    assert cluster_cache.top_members("pop:tenant", 5) == [("what is x", 2)]
    cluster_cache.add_distinct("dau:tenant", "u1", ttl_s=60)
    cluster_cache.add_distinct("dau:tenant", "u2", ttl_s=60)
    assert cluster_cache.count_distinct("dau:tenant") == 2
    assert cluster_cache.errors == 0


def test_unreachable_cluster_is_a_miss_not_a_crash() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", cluster=True, timeout_s=0.1)  # construction never connects
    assert cache.get("x") is None
    assert cache.rate_limit("rl:t:u", 1, 60) == (True, 0)  # fails open
    assert cache.errors >= 1
