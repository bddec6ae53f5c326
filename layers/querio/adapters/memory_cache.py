"""In-process cache for the embedded stack (no ``REDIS_URL``): a TTL map behind one lock.

Bounded by entry count (LRU eviction) so a long-running ``querio serve`` cannot grow without
limit. Counters (corpus generations) never expire and are never evicted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class MemoryCache:
    name = "memory"

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._max = max_entries

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

    def incr(self, key: str) -> int:
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + 1
            return self._counters[key]

    def get_int(self, key: str) -> int:
        with self._lock:
            return self._counters.get(key, 0)
