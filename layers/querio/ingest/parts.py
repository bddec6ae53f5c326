"""Large PDFs: page-range parts, each ingested by its own invocation, assembled by the last.

**Why.** One Lambda invocation lasts at most 900 s. Parsing runs at ~22-61 pages/s here, but
embedding is the bottleneck: ~15-25 chunks/s measured on 2 vCPU (all-MiniLM-L6-v2 on the
CPU), and a manual page gives ~4 chunks. A 1,300-page manual is ~5,200 chunks, i.e. 210-350 s
of embedding alone on a good day and well past 900 s on a slow or throttled one: one
invocation cannot be trusted with it.

**Budget.** A part of ``pages_per_part`` = 200 pages (the default) is ~800 chunks ≈ 40-60 s of
embedding plus ~5-10 s of parsing and a few seconds of COPY: about a tenth of the 900 s
limit, which leaves room for cold starts (model load ~5-10 s), slow pages and a CPU share
below 2 vCPU. Lower ``QUERIO_PAGES_PER_PART`` for smaller function memory (fewer vCPUs).
SQS runs the parts in parallel up to the function's concurrency.

**Flow.**

1. The ObjectCreated invocation reads the page count only (pypdf loads pages lazily), claims
   the document (``processing``), records parts ``[1..P], [P+1..2P], ...`` in ``ingest_parts``
   and sends one :class:`~querio.ingest.events.IngestPart` message per part to
   ``QUERIO_INGEST_QUEUE_URL``. If sending fails the document is marked failed and the error
   raised, so the redelivered notification re-plans it from scratch.
2. Each part invocation claims its part (compare-and-set; a redelivered part that is done is
   acknowledged), parses only its pages, chunks, embeds and stores its chunks with
   ``chunk_index = part_no * PART_INDEX_STRIDE + i`` (unique across parts, in page order)
   and marks the part done, in one transaction under the document's row lock.
3. That transaction also counts unfinished parts: the part that sees none left marks the
   document ``completed``. Before that, the staged chunks are invisible to search, which
   only reads ``completed`` documents.

Permanent errors in a part (a page range pypdf cannot read at all) fail the part and the
document; transient ones fail the part (so a retry can reclaim it) and raise.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from querio.errors import PermanentIngestError, TransientError
from querio.ingest.events import IngestPart
from querio.ingest.pdf import parse_pdf
from querio.ingest.pipeline import (
    STALE_PROCESSING_S,
    STORED,
    chunk_and_embed,
    display_filename,
    embedding_context,
    failure_of,
)
from querio.models import IngestOutcome, NewDocument, S3Binding

if TYPE_CHECKING:
    from querio.service import QuerioService

log = logging.getLogger(__name__)

#: chunk_index of part n's chunks starts at n * this (a part of 200 pages has ~1,000 chunks).
PART_INDEX_STRIDE = 100_000

Enqueue = Callable[[Sequence[dict[str, Any]]], None]


def plan_parts(page_count: int, pages_per_part: int) -> list[tuple[int, int]]:
    """``[(1, P), (P+1, 2P), ..., (k, page_count)]``: inclusive, 1-based page ranges."""
    return [(a, min(a + pages_per_part - 1, page_count)) for a in range(1, page_count + 1, pages_per_part)]


def split_upload(service: QuerioService, tenant_id: str, s3: S3Binding, filename: str, data: bytes, page_count: int,
                 enqueue: Enqueue) -> IngestOutcome:
    """Claim the document and enqueue its parts (step 1 of the module docstring)."""
    started = time.perf_counter()
    docs = service.documents
    bucket, key = s3.bucket, s3.key
    name = display_filename(filename)
    doc, created = docs.claim_document(NewDocument(
        tenant_id=tenant_id, original_filename=name, filename=name, file_size=len(data),
        content_sha256=hashlib.sha256(data).hexdigest(), storage_type=service.blobs.storage_type,
        storage_path=key, uploaded_by=service.S3_UPLOAD_USER, s3=s3))
    if not created and doc.processing_status in STORED:
        return IngestOutcome(status="duplicate", document=doc, reason="identical content already ingested",
                             pages=doc.page_count or 0, chunks=doc.chunk_count)
    claimed = docs.try_start_processing(tenant_id, doc.id, stale_after_s=STALE_PROCESSING_S)
    if claimed is None:
        return IngestOutcome(status="in_progress", document=doc, reason="another worker is ingesting it")
    ranges = plan_parts(page_count, service.settings.pages_per_part)
    try:
        service.parts.start_parts(tenant_id, doc.id, ranges)
        enqueue([IngestPart(tenant_id=tenant_id, document_id=doc.id, bucket=bucket,
                            key=claimed.storage_path or key, part_no=i, parts_total=len(ranges),
                            page_from=a, page_to=b).model_dump(mode="json")
                 for i, (a, b) in enumerate(ranges)])
    except BaseException as exc:
        try:  # let the redelivered notification re-plan it (failed → claimable)
            docs.mark_failed(tenant_id, doc.id, code="split_failed", message=f"{type(exc).__name__}: {exc}"[:1000])
        except Exception:
            log.exception("could not record the failed split of %s", doc.id)
        raise
    log.info("document %s: %d pages split into %d parts", doc.id, page_count, len(ranges))
    return IngestOutcome(status="in_progress", document=claimed, pages=0, chunks=0,
                         reason=f"split into {len(ranges)} parts of up to {service.settings.pages_per_part} pages",
                         seconds=round(time.perf_counter() - started, 3))


def ingest_part(service: QuerioService, item: IngestPart) -> IngestOutcome:
    """Parse, chunk, embed and stage one part; the last part completes the document."""
    started = time.perf_counter()
    docs, tenant, doc_id = service.documents, item.tenant_id, item.document_id
    part = service.parts.claim_part(tenant, doc_id, item.part_no, stale_after_s=STALE_PROCESSING_S)
    if part is None:
        return IngestOutcome(status="duplicate", document=None,
                             reason=f"part {item.part_no} is done, held by another worker, or its document is gone")
    try:
        data = service.blobs.get(item.key)
        parsed = parse_pdf(data, max_pages=service.settings.max_pages, pages=(part["page_from"], part["page_to"]))
        embedder = service.embedder
        filename = docs.get_document(tenant, doc_id).filename
        drafts, vectors = chunk_and_embed(parsed.pages, context=embedding_context(parsed.info.title, filename),
                                          settings=service.settings, embedder=embedder)
        base = item.part_no * PART_INDEX_STRIDE
        chunks = [c.model_copy(update={"chunk_index": base + c.chunk_index}) for c in drafts]
        info = ({"title": parsed.info.title, "author": parsed.info.author, "language": parsed.info.language,
                 "created_date": parsed.info.created_date.isoformat() if parsed.info.created_date else None}
                if item.part_no == 0 else {})
        doc = service.parts.store_part(tenant, doc_id, item.part_no, chunks=chunks,
                              embeddings=vectors if service.vectors.colocated else None,
                              stats={"word_count": parsed.word_count, "empty_pages": len(parsed.empty_pages),
                                     "info": info, "embedder_variant": embedder.variant},
                              index_stride=PART_INDEX_STRIDE, indexing=service.pipeline.indexing)
    except PermanentIngestError as exc:
        service.parts.fail_part(tenant, doc_id, item.part_no, exc.message)
        failed = docs.mark_failed(tenant, doc_id, code=exc.code, message=f"part {item.part_no}: {exc.message}")
        return IngestOutcome(status="failed", document=failed, reason=exc.message, error_code=exc.code)
    except TransientError:
        try:
            service.parts.fail_part(tenant, doc_id, item.part_no, "dependency unavailable; retried")
        except Exception:
            log.warning("could not record the failure of part %d of %s", item.part_no, doc_id)
        raise
    except Exception as exc:  # a bug or a library choking on these pages: the document fails, once
        log.exception("part %d of document %s failed unexpectedly", item.part_no, doc_id)
        code, message = failure_of(exc)
        service.parts.fail_part(tenant, doc_id, item.part_no, message)
        failed = docs.mark_failed(tenant, doc_id, code=code, message=f"part {item.part_no}: {message}")
        return IngestOutcome(status="failed", document=failed, reason=message, error_code=code)
    except BaseException as exc:
        try:
            service.parts.fail_part(tenant, doc_id, item.part_no, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.warning("could not record the failure of part %d of %s", item.part_no, doc_id)
        raise
    pages = part["page_to"] - part["page_from"] + 1
    seconds = round(time.perf_counter() - started, 3)
    log.info("document %s part %d/%d (pages %d-%d): %d chunks in %.1f s", doc_id, item.part_no + 1,
             item.parts_total, part["page_from"], part["page_to"], len(chunks), seconds)
    if doc is None:
        return IngestOutcome(status="in_progress", document=None, pages=pages, chunks=len(chunks), seconds=seconds,
                             reason=f"part {item.part_no + 1} of {item.parts_total} stored")
    if doc.chunk_count == 0:
        failed = docs.mark_failed(tenant, doc_id, code="no_extractable_text",
                                  message=f"None of the {doc.page_count} pages has extractable text.")
        return IngestOutcome(status="failed", document=failed, error_code="no_extractable_text",
                             reason=failed.error_message)
    return IngestOutcome(status="ingested", document=doc, pages=pages, chunks=len(chunks), seconds=seconds,
                         empty_pages=len(parsed.empty_pages))
