"""The ingest queue's domain step: one SQS message body → work items → service calls.

The Lambda handler (``functions/ingest/handler.py``) wraps this with Powertools batch
processing; everything here is plain Python so it runs the same in tests and the CLI.

Retry semantics (SQS redelivers a message whose record the handler reports as failed; after
``maxReceiveCount`` receipts the queue moves it to the dead-letter queue):

* **acknowledged** (returned): ingested, duplicate, in progress elsewhere, deleted, already
  gone, ``skipped`` (a stale or replayed event, bytes the key's document already holds such
  as the archive's copy to GLACIER, an object deleted before its ingest ran: no failure
  metric), ignored (test event, non-PDF, key outside the scheme, foreign bucket) and
  permanent failures: of the file itself (a bad PDF: the document is recorded ``failed`` with
  its code) and any unexpected error while handling one item (a bug, a library choking on
  one file: ``failed``, reason ``internal_error`` or the error's code), so one bad item never
  loops through retries nor takes down the others;
* **raised** (retried, then DLQ): :class:`~querio.errors.TransientError` only (database, S3,
  embedder or serving vector store unavailable), and malformed bodies
  (:class:`~querio.ingest.events.MalformedMessage`, kept in the DLQ for a person to read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from querio.errors import TransientError
from querio.ingest.events import IgnoreRecord, IngestPart, Item, RemoveObject, parse_body
from querio.ingest.pipeline import failure_of

if TYPE_CHECKING:
    from querio.service import QuerioService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What one work item did. ``status`` is ``ingested | duplicate | in_progress | failed |
    skipped | deleted | absent | ignored`` (a stored part that is not the last is ``in_progress``, with
    its own ``pages``/``chunks``); ``reason`` is the machine-readable cause of a failure or of
    an ignore (used as the ``reason`` dimension of the ``IngestFailures`` metric)."""

    kind: str
    status: str
    key: str | None = None
    tenant_id: str | None = None
    document_id: str | None = None
    reason: str | None = None
    message: str | None = None
    pages: int = 0
    chunks: int = 0


Enqueue = Callable[[Sequence[dict[str, Any]]], None]


def handle_item(service: QuerioService, item: Item, enqueue: Enqueue | None = None) -> RecordResult:
    """``enqueue`` (the ingest queue) enables splitting large PDFs into page-range parts.
    Raises only :class:`~querio.errors.TransientError`; any other error is this item's
    permanent failure (see the module docstring)."""
    try:
        return _handle_item(service, item, enqueue)
    except TransientError:
        raise
    except Exception as exc:
        log.exception("ingest record %s failed permanently", item.kind)
        code, message = failure_of(exc)
        return RecordResult(item.kind, "failed", key=getattr(item, "key", None),
                            tenant_id=getattr(item, "tenant_id", None), reason=code, message=message)


def _handle_item(service: QuerioService, item: Item, enqueue: Enqueue | None) -> RecordResult:
    if isinstance(item, IgnoreRecord):
        return RecordResult("ignore", "ignored", key=item.key, reason="ignored", message=item.reason)
    expected = service.settings.s3_bucket
    if expected and item.bucket != expected:
        return RecordResult(item.kind, "ignored", key=item.key, tenant_id=item.tenant_id, reason="ignored",
                            message=f"bucket {item.bucket!r} is not QUERIO_S3_BUCKET")
    if isinstance(item, IngestPart):
        out = service.ingest_part(item)
        return RecordResult("part", out.status, key=item.key, tenant_id=item.tenant_id,
                            document_id=str(item.document_id),
                            reason=out.error_code if out.status == "failed" else None,
                            message=out.reason, pages=out.pages, chunks=out.chunks)
    if isinstance(item, RemoveObject):
        doc = service.delete_s3_object_document(item.tenant_id, item.bucket, item.key, version=item.version)
        return RecordResult("remove", "deleted" if doc else "absent", key=item.key, tenant_id=item.tenant_id,
                            document_id=str(doc.id) if doc else None)
    if item.size is not None and item.size > service.settings.max_file_bytes:
        return RecordResult("ingest", "failed", key=item.key, tenant_id=item.tenant_id, reason="file_too_large",
                            message=f"{item.size:,} bytes > QUERIO_MAX_FILE_BYTES "
                                    f"({service.settings.max_file_bytes:,})")
    outcome = service.ingest_s3_object(item.tenant_id, item.bucket, item.key, version=item.version,
                                       enqueue=enqueue)
    doc = outcome.document
    return RecordResult("ingest", outcome.status, key=item.key, tenant_id=item.tenant_id,
                        document_id=str(doc.id) if doc else None,
                        reason=outcome.error_code if outcome.status == "failed" else None,
                        message=outcome.reason, pages=outcome.pages, chunks=outcome.chunks)


def handle_body(service: QuerioService, body: str, enqueue: Enqueue | None = None) -> list[RecordResult]:
    """Every work item of one message, in order. Raises on anything worth retrying; a
    message with several records is retried whole, which is safe: each step is idempotent."""
    results = []
    for item in parse_body(body):
        result = handle_item(service, item, enqueue)
        log.info("ingest record %s: %s", result.kind, result.status,
                 extra={"key": result.key, "tenant_id": result.tenant_id, "document_id": result.document_id,
                        "reason": result.reason, "detail": result.message})
        results.append(result)
    return results
