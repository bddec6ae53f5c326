"""Query analytics and document access times, written off the request path.

A search used to make two more database round trips after its answer was ready (one
``query_analytics`` row, one ``accessed_at`` update). :class:`AnalyticsWriter` queues them
instead; one daemon thread writes them in batches (``DocumentStore.record_queries`` and one
``touch_documents`` per tenant). The queue is bounded: when the database cannot keep up,
records are dropped and counted (``dropped``), never waited for, and a failing write is
logged and counted (``errors``); a search never fails or slows for analytics.

``flush`` writes what is queued (``stats`` calls it, so a process reads its own queries;
``close`` and interpreter exit call it). In Lambda the thread is frozen between invocations
and resumes with the next one: records are written then, and lost only if the container is
reclaimed first, which is acceptable for usage counters and a day-granular archive clock.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Protocol

from querio.ports import QueryRecord

log = logging.getLogger(__name__)


class AnalyticsSink(Protocol):
    """The two ``DocumentStore`` methods the writer needs."""

    def record_queries(self, records: Sequence[QueryRecord]) -> None: ...

    def touch_documents(self, tenant_id: str, document_ids: Sequence[uuid.UUID]) -> None: ...


_Item = tuple[QueryRecord, tuple[uuid.UUID, ...]]


class AnalyticsWriter:
    """A bounded queue of query records drained in batches by one daemon thread (started lazily)."""

    def __init__(self, sink: AnalyticsSink, *, max_queue: int = 10_000, batch: int = 500,
                 interval_s: float = 0.5) -> None:
        self._sink = sink
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=max_queue)
        self._batch = batch
        self._interval_s = interval_s
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self.errors = 0
        self.written = 0

    def submit(self, record: QueryRecord, document_ids: Sequence[uuid.UUID] = ()) -> None:
        """Queue one search's record and the documents it returned; never blocks, never raises."""
        try:
            self._queue.put_nowait((record, tuple(document_ids)))
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("analytics queue full: %d query records dropped so far", self.dropped)
            return
        self._ensure_thread()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything queued so far; False if that took longer than ``timeout_s``."""
        if self._thread is None:
            self._drain()  # nothing was ever started: write inline (usually nothing)
            return True
        deadline = time.monotonic() + timeout_s
        with self._queue.all_tasks_done:  # queue.join() with a timeout
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush, then stop the thread (idempotent; a later submit starts a new one)."""
        self.flush(timeout_s)
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        self._stop = threading.Event()

    # internals -------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="querio-analytics", daemon=True)
                thread.start()
                self._thread = thread
                _live.add(self)

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                first = self._queue.get(timeout=self._interval_s)
            except queue.Empty:
                continue
            self._write([first, *self._take(self._batch - 1)])

    def _take(self, n: int) -> list[_Item]:
        items: list[_Item] = []
        while len(items) < n:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _drain(self) -> None:
        while items := self._take(self._batch):
            self._write(items)

    def _write(self, items: list[_Item]) -> None:
        try:
            self._sink.record_queries([record for record, _ in items])
            touched: dict[str, set[uuid.UUID]] = {}
            for record, doc_ids in items:
                touched.setdefault(record.tenant_id, set()).update(doc_ids)
            for tenant, ids in touched.items():
                if ids:
                    self._sink.touch_documents(tenant, sorted(ids))
            self.written += len(items)
        except Exception:  # analytics must never take anything down
            self.errors += 1
            log.warning("could not write %d query analytics records", len(items), exc_info=True)
        finally:
            for _ in items:
                self._queue.task_done()


_live: weakref.WeakSet[AnalyticsWriter] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for writer in list(_live):
        writer.flush(timeout_s=5.0)
