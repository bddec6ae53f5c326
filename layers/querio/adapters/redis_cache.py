"""Redis cache (``REDIS_URL``; ``rediss://`` for ElastiCache in-transit encryption).

Redis is an optimisation, never a dependency of correctness: every call has a bounded
timeout, and any Redis error degrades to a cache miss with a warning (logged once per
outage window), so searches keep being answered when Redis is down or slow.
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)


class RedisCache:
    name = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.25, prefix: str = "querio:") -> None:
        # Timeouts bound the damage of a slow Redis to ~timeout_s per call.
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30,
        )
        self._prefix = prefix
        self._warned_at = 0.0
        self.errors = 0  # observable by tests and metrics

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _failed(self, op: str, exc: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("redis %s failed, serving without cache: %s", op, exc)

    def get(self, key: str) -> bytes | None:
        try:
            value = self._client.get(self._k(key))
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0:
            return
        try:
            self._client.set(self._k(key), value, ex=ttl_s)
        except redis.RedisError as exc:
            self._failed("set", exc)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self._client.delete(*(self._k(k) for k in keys))
        except redis.RedisError as exc:
            self._failed("delete", exc)

    def incr(self, key: str) -> int:
        try:
            return int(self._client.incr(self._k(key)))
        except redis.RedisError as exc:
            # Without Redis the generation cannot advance; result caching is skipped while
            # Redis is down (see get_int), so no stale result can be served.
            self._failed("incr", exc)
            return -1

    def get_int(self, key: str) -> int:
        try:
            value = self._client.get(self._k(key))
        except redis.RedisError as exc:
            self._failed("get_int", exc)
            return -1
        return int(value) if value is not None else 0
