"""``querio.ingest.bulk``: several files in flight, largest first, every result delivered."""

from __future__ import annotations

import threading
import time

import pytest

from querio.ingest.bulk import ingest_concurrently


class Recorder:
    """An ``ingest`` that records start order and how many calls overlap."""

    def __init__(self, fail: str | None = None) -> None:
        self.started: list[str] = []
        self.running = self.most = 0
        self.lock = threading.Lock()
        self.fail = fail

    def __call__(self, item: str) -> str:
        with self.lock:
            self.started.append(item)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02)
            if item == self.fail:
                raise RuntimeError(f"{item} broke")
            return item.upper()
        finally:
            with self.lock:
                self.running -= 1


ITEMS = ["bb", "a", "dddd", "ccc", "eeeee", "f"]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_item_once_with_at_most_workers_in_flight(workers: int) -> None:
    ingest = Recorder()
    results = dict(ingest_concurrently(ITEMS, ingest, workers=workers, size=len))
    assert results == {i: item.upper() for i, item in enumerate(ITEMS)}
    assert sorted(ingest.started) == sorted(ITEMS)
    assert ingest.most == workers


def test_largest_first() -> None:
    ingest = Recorder()
    list(ingest_concurrently(ITEMS, ingest, workers=1, size=len))
    assert ingest.started == ["eeeee", "dddd", "ccc", "bb", "a", "f"]  # ties keep the given order
    ingest = Recorder()
    list(ingest_concurrently(ITEMS, ingest, workers=2, size=len))
    assert set(ingest.started[:2]) == {"eeeee", "dddd"}


def test_given_order_without_sizes() -> None:
    ingest = Recorder()
    list(ingest_concurrently(ITEMS, ingest, workers=1))
    assert ingest.started == ITEMS


def test_an_exception_stops_new_calls_and_is_raised_after_the_running_ones() -> None:
    ingest = Recorder(fail="dddd")
    with pytest.raises(RuntimeError, match="dddd broke"):
        list(ingest_concurrently(ITEMS, ingest, workers=2, size=len))
    assert ingest.running == 0  # nothing left running behind the caller's back
    assert len(ingest.started) < len(ITEMS)


def test_bad_worker_count() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(ingest_concurrently(ITEMS, Recorder(), workers=0))
    assert list(ingest_concurrently([], Recorder(), workers=2)) == []
