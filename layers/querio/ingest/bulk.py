"""Many files through the ingest pipeline, several in flight at once (``querio ingest DIR``).

Why: one file's pipeline keeps both cores busy only while it embeds (the embedder runs a
file's batches one per core, see ``querio.embedding_onnx``); its parse, chunking and store
are one Python thread and the database. On the six eval manuals those single-threaded phases
were 25.5 s of a 65.6 s ingest (parse 16.4, chunk 2.6, store 6.5; 2 cores, quiet). With
one file per core in flight, the other file's parse or store runs while this one embeds.
Files start largest first, so the run does not end on a large file alone.

Each file is still one ``ingest`` call with its own outcome; a failure of one never stops
the others (the callable is expected to turn errors into outcomes, as the CLI's does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from querio.embedding import _usable_cores

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Files in flight by default: one per usable core."""
    return _usable_cores()


def ingest_concurrently(items: Sequence[T], ingest: Callable[[T], R], *, workers: int | None = None,
                        size: Callable[[T], int] | None = None) -> Iterator[tuple[int, R]]:
    """Call ``ingest`` on every item, ``workers`` at a time, largest ``size`` first; yield
    ``(index into items, result)`` as each finishes. An exception from ``ingest`` is re-raised
    here after the calls already running have finished; no new call starts after it."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    order = sorted(range(len(items)), key=lambda i: -size(items[i])) if size else list(range(len(items)))
    width = min(workers or default_workers(), len(items))
    if width <= 1:
        for i in order:
            yield i, ingest(items[i])
        return
    pending = iter(order)
    with ThreadPoolExecutor(width, thread_name_prefix="querio-ingest") as pool:
        running: dict[Future[R], int] = {}

        def start() -> None:
            i = next(pending, None)
            if i is not None:
                running[pool.submit(ingest, items[i])] = i

        for _ in range(width):
            start()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                result = future.result()  # raises: the with block waits for the others
                start()
                yield i, result
