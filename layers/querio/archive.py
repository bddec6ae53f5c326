"""The daily archive job: re-sync ``indexing`` documents, purge expired soft-deletes, then
move idle documents to GLACIER.

``indexing`` documents (stored, but the serving vector store, Pinecone, did not take their
vectors) are retried here too: the S3 ingest path retries its own message, but an upload
through the API has no message, and a Pinecone outage longer than the queue's retries leaves
documents behind; a daily sweep bounds how long one waits without a person running
``querio vectors reconcile``.

Runs across every tenant (the only code that does), always acting on each row with that
row's own tenant id. Idempotent and resumable:

* work is selected by predicates on the current state (``deleted_at`` older than the
  retention; ``storage_class = 'STANDARD'`` and idle), so a document done by an earlier,
  interrupted run is simply not selected again, and re-running is a no-op;
* each document's step commits on its own (purge: vectors, blob, then the row; archive: the
  S3 copy to GLACIER, then the row), so a cut-off loses at most the one document in flight,
  which the next run redoes (both steps are idempotent);
* batches are small and keyset-paged by id, and the run stops early when the Lambda's
  remaining time falls below ``reserve_ms``, leaving the rest for the next run
  (``complete=False`` in the report). A document that fails (e.g. its blob is missing) is
  logged, counted and skipped; it is retried by the next run.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from querio.errors import QuerioError
from querio.models import DocumentStatus
from querio.ports import utcnow

if TYPE_CHECKING:
    from querio.models import Document
    from querio.service import QuerioService

log = logging.getLogger(__name__)

#: Stop when less than this is left of the invocation: one S3 copy of a large PDF plus the
#: row update take seconds, so 30 s leaves ample room to return cleanly.
RESERVE_MS = 30_000
BATCH_SIZE = 25


@dataclass
class ArchiveReport:
    purged: int = 0
    archived: int = 0
    reindexed: int = 0  # ``indexing`` documents whose vectors reached the serving store
    errors: list[dict[str, str]] = field(default_factory=list)
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_archive(service: QuerioService, *, now: dt.datetime | None = None,
                time_left_ms: Callable[[], int] | None = None, reserve_ms: int = RESERVE_MS,
                batch_size: int = BATCH_SIZE) -> ArchiveReport:
    """Purge soft-deleted documents older than ``purge_after_days``, then archive documents
    not accessed for ``archive_after_days`` (``accessed_at``, or ``uploaded_at`` if never read)."""
    now = now or utcnow()
    settings = service.settings
    report = ArchiveReport()

    def out_of_time() -> bool:
        if time_left_ms is not None and time_left_ms() < reserve_ms:
            report.complete = False
            return True
        return False

    def sweep(select: Callable[[uuid.UUID | None], list[Document]], act: Callable[[Document], bool],
              what: str) -> bool:
        after: uuid.UUID | None = None
        while not out_of_time():
            batch = select(after)
            if not batch:
                return True
            for doc in batch:
                if out_of_time():
                    return False
                after = doc.id
                try:
                    if act(doc):
                        setattr(report, what, getattr(report, what) + 1)
                except QuerioError as exc:
                    log.warning("archive job: %s of document %s failed: %s", what, doc.id, exc.message)
                    report.errors.append({"document_id": str(doc.id), "step": what, "code": exc.code,
                                          "message": exc.message[:300]})
        return False

    def purge(doc: Document) -> bool:
        service.purge(doc.tenant_id, doc)
        return True

    def archive(doc: Document) -> bool:
        return service.archive_document(doc) is not None

    def reindex(doc: Document) -> bool:
        return service.sync_pending(doc).processing_status == DocumentStatus.COMPLETED

    deleted_before = now - dt.timedelta(days=settings.purge_after_days)
    idle_before = now - dt.timedelta(days=settings.archive_after_days)
    # first the documents users are waiting for (stored, not yet searchable), then the clean-up
    if (sweep(lambda after: service.documents.indexing_candidates(after_id=after, limit=batch_size),
              reindex, "reindexed")
            and sweep(lambda after: service.documents.purge_candidates(deleted_before, after_id=after,
                                                                        limit=batch_size), purge, "purged")):
        sweep(lambda after: service.documents.archive_candidates(idle_before, after_id=after, limit=batch_size),
              archive, "archived")
    log.info("archive job: %s", report.as_dict())
    return report
