"""In-process cache for the embedded stack (no ``REDIS_URL``): a TTL map behind one lock.

Bounded by entry count (LRU eviction) so a long-running ``querio serve`` cannot grow without
limit. Counters (corpus generations) never expire and are never evicted. Rate-limit windows,
popular-query tallies and distinct-user sets behave like the Redis adapter's (the distinct
count is exact here, HyperLogLog's estimate there); they expire like Redis keys and are
swept when they do.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict


class MemoryCache:
    name = "memory"

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._counters: dict[str, int] = {}
        self._windows: dict[str, tuple[float, int]] = {}  # rate limits: key → (window end, count)
        self._scores: dict[str, tuple[float, dict[str, int]]] = {}  # key → (expires, member → score)
        self._distinct: dict[str, tuple[float, set[str]]] = {}  # key → (expires, members)
        self._lock = threading.Lock()
        self._max = max_entries
        self._next_sweep = 0.0
        self.errors = 0  # never fails; kept for parity with RedisCache

    def healthy(self) -> bool:
        return True  # in-process: up whenever the process is

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires, value = item
            if expires < time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic() + ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._data.pop(k, None)
                self._counters.pop(k, None)
                self._windows.pop(k, None)
                self._scores.pop(k, None)
                self._distinct.pop(k, None)

    def incr(self, key: str) -> int:
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + 1
            return self._counters[key]

    def get_int(self, key: str) -> int:
        with self._lock:
            return self._counters.get(key, 0)

    # --- rate limits, popular queries, distinct users ------------------------------------

    def _sweep(self, now: float) -> None:
        """Drop expired windows and sets (at most once a minute; caller holds the lock)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60
        self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        self._scores = {k: v for k, v in self._scores.items() if v[0] > now}
        self._distinct = {k: v for k, v in self._distinct.items() if v[0] > now}

    def rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        """Fixed window, same semantics as ``RedisCache.rate_limit`` (atomic under the lock)."""
        if limit <= 0:
            return True, 0
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            end, count = self._windows.get(key, (0.0, 0))
            if end <= now:
                end, count = now + window_s, 0
            count += 1
            self._windows[key] = (end, count)
        if count <= limit:
            return True, 0
        return False, max(1, math.ceil(end - now))

    def count_member(self, key: str, member: str, *, ttl_s: int, keep: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            expires, scores = self._scores.get(key, (0.0, {}))
            if expires <= now:
                scores = {}
            scores[member] = scores.get(member, 0) + 1
            if len(scores) > keep:
                ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
                scores = dict(ranked)
            self._scores[key] = (now + ttl_s, scores)

    def top_members(self, key: str, n: int) -> list[tuple[str, int]] | None:
        with self._lock:
            expires, scores = self._scores.get(key, (0.0, {}))
            if expires <= time.monotonic():
                return []
            return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def add_distinct(self, key: str, member: str, *, ttl_s: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            expires, members = self._distinct.get(key, (0.0, set()))
            if expires <= now:
                members = set()
            members.add(member)
            self._distinct[key] = (now + ttl_s, members)

    def count_distinct(self, key: str) -> int | None:
        with self._lock:
            expires, members = self._distinct.get(key, (0.0, set()))
            return len(members) if expires > time.monotonic() else 0
