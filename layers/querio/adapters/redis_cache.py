"""Redis cache (``REDIS_URL``; ``rediss://`` for ElastiCache in-transit encryption).

Redis is an optimisation, never a dependency of correctness: every call has a bounded
timeout, and any Redis error degrades to a cache miss (rate limits: *allow*), so requests
keep being answered when Redis is down or slow.

Down or slow Redis
    Each command has ``timeout_s`` (0.25 s) for connecting and for the reply, and no client
    retries. After a failure the adapter stops calling Redis for ``cooldown_s`` (a small
    circuit breaker), so a request that makes several cache calls pays the timeout once, not
    once per call. Every failed or skipped call adds to :attr:`RedisCache.errors` and emits the
    ``CacheErrors`` metric; a warning is logged once per ``cooldown``-separated outage.

TLS
    ``rediss://host:6379/0`` selects redis-py's ``SSLConnection`` (server certificate checked
    against the system CAs, which include Amazon's). TLS options in the URL's query string pass
    through ``from_url`` unchanged, e.g. ``rediss://host:6379/0?ssl_cert_reqs=required`` or
    ``&ssl_ca_certs=/opt/ca.pem``. ElastiCache with AUTH: ``rediss://:TOKEN@host:6379/0``.

Keys are ``prefix + key``; the domain builds the rest (``emb:``, ``res:``, ``gen:``, ``rl:``,
``pop:``, ``dau:``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from querio.observability import emit

log = logging.getLogger(__name__)
#: Everything redis-py raises for an unavailable or confused server (cluster errors included).
_ERRORS = (redis.RedisError, RedisClusterException)


class RedisCache:
    name = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.25, prefix: str = "querio:",
                 cooldown_s: float = 5.0, password: str | None = None, cluster: bool = False) -> None:
        # Timeouts bound the damage of a slow Redis to ~timeout_s per outage window.
        options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                                   "retry": Retry(NoBackoff(), 0)}
        if password is not None:  # the AUTH token from Secrets Manager, never in the URL or environment
            options["password"] = password
        # Cluster mode (enterprise): every command here touches one key (pipelines included),
        # so each maps to one hash slot; DEL of several keys is split per slot by redis-py.
        # The cluster client connects (to discover slots) when built, so it is built on first use:
        # a cluster that is down at start-up must be a cache miss, not a failed cold start.
        self._url, self._options = url, options
        self._plain = None if cluster else redis.Redis.from_url(url, health_check_interval=30, **options)
        self._cluster_client: Any = None
        self.cluster = cluster
        self._prefix = prefix
        self._cooldown_s = cooldown_s
        self._down_until = 0.0
        self._warned_at = -1e9
        self.errors = 0  # failed or skipped calls; observable by tests and health

    @property
    def _client(self) -> Any:
        if self._plain is not None:
            return self._plain
        if self._cluster_client is None:
            try:
                self._cluster_client = redis.RedisCluster.from_url(self._url, **self._options)
            except RedisClusterException as exc:  # not a RedisError: convert, so callers degrade
                raise redis.ConnectionError(f"redis cluster unreachable: {exc}") from exc
        return self._cluster_client

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _available(self, op: str) -> bool:
        if time.monotonic() < self._down_until:
            self.errors += 1
            emit("CacheErrors")
            return False
        return True

    def _failed(self, op: str, exc: Exception) -> None:
        self.errors += 1
        emit("CacheErrors")
        now = time.monotonic()
        self._down_until = now + self._cooldown_s
        if now - self._warned_at > max(self._cooldown_s, 30.0):
            self._warned_at = now
            log.warning("redis %s failed, serving without cache: %s", op, exc)

    def healthy(self) -> bool:
        """PING within ``timeout_s``, even during a cooldown (health must see a recovery at once);
        a stalled server (no reply) or a refused connection is unhealthy."""
        try:
            ok = bool(self._client.ping())
        except _ERRORS as exc:
            self._failed("ping", exc)
            return False
        if ok:
            self._down_until = 0.0  # answering again: stop skipping calls
        return ok

    # --- key-value --------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if not self._available("get"):
            return None
        try:
            value = self._client.get(self._k(key))
        except _ERRORS as exc:
            self._failed("get", exc)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0 or not self._available("set"):
            return
        try:
            self._client.set(self._k(key), value, ex=ttl_s)
        except _ERRORS as exc:
            self._failed("set", exc)

    def delete(self, *keys: str) -> None:
        if not keys or not self._available("delete"):
            return
        try:
            self._client.delete(*(self._k(k) for k in keys))
        except _ERRORS as exc:
            self._failed("delete", exc)

    def incr(self, key: str) -> int:
        if not self._available("incr"):
            return -1
        try:
            return int(self._client.incr(self._k(key)))
        except _ERRORS as exc:
            # The generation cannot advance; the service stops trusting cached results
            # for a while (see QuerioService._result_key).
            self._failed("incr", exc)
            return -1

    def get_int(self, key: str) -> int:
        if not self._available("get_int"):
            return -1
        try:
            value = self._client.get(self._k(key))
        except _ERRORS as exc:
            self._failed("get_int", exc)
            return -1
        return int(value) if value is not None else 0

    # --- rate limits, popular queries, distinct users ------------------------------------

    def rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        """Fixed window: ``INCR`` + ``EXPIRE NX`` + ``TTL`` in one ``MULTI``/``EXEC``.

        The transaction makes count and expiry one atomic step: no get-then-incr race, and no
        counter left without a TTL. The first request of a window starts it. Fails open.
        """
        if limit <= 0 or not self._available("rate_limit"):
            return True, 0
        k = self._k(key)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.incr(k)
            pipe.expire(k, window_s, nx=True)
            pipe.ttl(k)
            count, _, ttl = pipe.execute()
        except _ERRORS as exc:
            self._failed("rate_limit", exc)
            emit("RateLimitBypassed")
            return True, 0
        count, ttl = int(count), int(ttl)
        if count <= limit:
            return True, 0
        return False, max(1, ttl if ttl > 0 else window_s)

    def count_member(self, key: str, member: str, *, ttl_s: int, keep: int) -> None:
        """``ZINCRBY`` ``member``, keep the ``keep`` highest scores, refresh the expiry."""
        if not self._available("count_member"):
            return
        k = self._k(key)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.zincrby(k, 1, member)
            pipe.zremrangebyrank(k, 0, -(keep + 1))
            pipe.expire(k, ttl_s)
            pipe.execute()
        except _ERRORS as exc:
            self._failed("count_member", exc)

    def top_members(self, key: str, n: int) -> list[tuple[str, int]] | None:
        """The ``n`` highest-scored members, best first; ``None`` when Redis is unavailable."""
        if not self._available("top_members"):
            return None
        try:
            rows: Any = self._client.zrevrange(self._k(key), 0, n - 1, withscores=True)
        except _ERRORS as exc:
            self._failed("top_members", exc)
            return None
        return [(m.decode() if isinstance(m, bytes) else str(m), int(s)) for m, s in rows]

    def add_distinct(self, key: str, member: str, *, ttl_s: int) -> None:
        """``PFADD`` (HyperLogLog: ~0.8 % error in 12 KB per key) and refresh the expiry."""
        if not self._available("add_distinct"):
            return
        k = self._k(key)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.pfadd(k, member)
            pipe.expire(k, ttl_s)
            pipe.execute()
        except _ERRORS as exc:
            self._failed("add_distinct", exc)

    def count_distinct(self, key: str) -> int | None:
        if not self._available("count_distinct"):
            return None
        try:
            return int(self._client.pfcount(self._k(key)))
        except _ERRORS as exc:
            self._failed("count_distinct", exc)
            return None
