"""``DocumentStore`` in memory: the document rows and their chunks (with vectors), shared by
the other fakes the way the PostgreSQL adapters share tables.

Left out: S3-key retirement inside ``complete_document``/``mark_failed`` (the ``S3Objects`` fake
covers lookups only), the upload-date filters, and BM25 (full text scores a chunk by the
number of distinct query words it holds).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import Any

from querio.errors import Conflict, NotFound, ValidationFailed
from querio.models import ChunkDraft, ChunkRef, Document, DocumentStatus, NewDocument, SearchFilters
from querio.ports import StoredChunk, Vector

S = DocumentStatus
_WORD = re.compile(r"\w+")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InMemoryDocuments:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Document] = {}
        self.chunks: dict[uuid.UUID, list[tuple[StoredChunk, Vector | None]]] = {}  # by document id
        self.writes: dict[str, int] = {}  # per tenant: what corpus_version reads
        self.closed = False

    # helpers the other fakes use ------------------------------------------------------------
    def live(self, tenant_id: str, document_id: uuid.UUID) -> Document | None:
        doc = self.rows.get(document_id)
        return doc if doc is not None and doc.tenant_id == tenant_id and doc.deleted_at is None else None

    def set(self, doc: Document, **changes: Any) -> Document:
        self.rows[doc.id] = new = doc.model_copy(update={"updated_at": now(), **changes})
        self.writes[doc.tenant_id] = self.writes.get(doc.tenant_id, 0) + 1
        return new

    def _need(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        if (doc := self.live(tenant_id, document_id)) is None:
            raise NotFound(f"document {document_id} not found")
        return doc

    # the port ---------------------------------------------------------------------------------
    def claim_document(self, doc: NewDocument) -> tuple[Document, bool]:
        for row in self.rows.values():
            if row.tenant_id == doc.tenant_id and row.content_sha256 == doc.content_sha256 and not row.deleted_at:
                return row, False
        s3 = doc.s3
        row = Document(**doc.model_dump(exclude={"s3", "uploaded_by", "tags"}), tags=list(doc.tags),
                       processing_status=S.PENDING, uploaded_at=now(), updated_at=now(),
                       s3_bucket=s3.bucket if s3 else None, s3_key=s3.key if s3 else None,
                       s3_sequencer=s3.sequencer if s3 else None, s3_etag=s3.etag if s3 else None)
        return self.set(row), True

    def get_document(self, tenant_id: str, document_id: uuid.UUID, *, touch: bool = False) -> Document:
        self._need(tenant_id, document_id)  # NotFound first
        if touch:
            self.touch_documents(tenant_id, [document_id])
        return self.rows[document_id]

    def list_documents(self, tenant_id: str, *, status: DocumentStatus | None = None, limit: int = 50,
                       offset: int = 0) -> tuple[list[Document], int]:
        docs = sorted((d for d in self.rows.values() if d.tenant_id == tenant_id and d.deleted_at is None
                       and status in (None, d.processing_status)), key=lambda d: (-d.uploaded_at.timestamp(), d.id))
        return docs[offset:offset + limit], len(docs)

    def try_start_processing(self, tenant_id: str, document_id: uuid.UUID, *, stale_after_s: int) -> Document | None:
        doc = self._need(tenant_id, document_id)
        stale = doc.updated_at < now() - dt.timedelta(seconds=stale_after_s)
        if doc.processing_status in (S.PENDING, S.FAILED) or (doc.processing_status == S.PROCESSING and stale):
            return self.set(doc, processing_status=S.PROCESSING, error_code=None, error_message=None)
        return None

    def reset_for_reprocess(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        doc = self._need(tenant_id, document_id)
        if doc.processing_status not in (S.COMPLETED, S.INDEXING, S.FAILED):
            raise Conflict(f"document {document_id} is {doc.processing_status.value}")
        return self.set(doc, processing_status=S.PENDING)

    def mark_failed(self, tenant_id: str, document_id: uuid.UUID, *, code: str, message: str) -> Document:
        return self.set(self._need(tenant_id, document_id), processing_status=S.FAILED, error_code=code,
                        error_message=message)

    def complete_document(self, tenant_id: str, document_id: uuid.UUID, *, chunks: Sequence[ChunkDraft],
                          embeddings: Vector | None, info: dict[str, Any], indexing: bool = False) -> Document:
        if embeddings is not None and embeddings.shape[0] != len(chunks):
            raise ValidationFailed("embeddings do not match the chunks")
        doc = self._need(tenant_id, document_id)
        self.chunks[document_id] = [
            (StoredChunk(id=uuid.uuid4(), document_id=document_id, chunk_index=c.chunk_index, content=c.content,
                         page_number=c.page_number, page_end=c.page_end, filename=doc.filename,
                         title=info.get("title")), None if embeddings is None else embeddings[i])
            for i, c in enumerate(chunks)]
        known = {k: v for k, v in info.items() if k in Document.model_fields}
        return self.set(doc, **known, chunk_count=len(chunks),
                        processing_status=S.INDEXING if indexing else S.COMPLETED)

    def finish_indexing(self, tenant_id: str, document_id: uuid.UUID) -> Document | None:
        doc = self.live(tenant_id, document_id)
        indexing = doc is not None and doc.processing_status == S.INDEXING
        return self.set(doc, processing_status=S.COMPLETED) if doc is not None and indexing else None

    def soft_delete(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        return self.set(self._need(tenant_id, document_id), deleted_at=now())

    def purge_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        if (doc := self.rows.get(document_id)) is not None and doc.tenant_id == tenant_id:
            del self.rows[document_id]
            self.chunks.pop(document_id, None)
            self.writes[tenant_id] = self.writes.get(tenant_id, 0) + 1

    def searchable(self, tenant_id: str, filters: SearchFilters) -> list[tuple[StoredChunk, Vector | None]]:
        """Live chunks of the tenant that pass ``filters`` (shared with the vector fake)."""
        out = []
        for doc_id, rows in self.chunks.items():
            doc = self.live(tenant_id, doc_id)
            if doc is None or doc.processing_status != S.COMPLETED:
                continue
            if (filters.document_ids and doc_id not in filters.document_ids) or (
                    filters.tags and not set(filters.tags) & set(doc.tags)):
                continue
            out += [(c, v) for c, v in rows if (filters.page_from is None or c.page_end >= filters.page_from)
                    and (filters.page_to is None or c.page_number <= filters.page_to)]
        return out

    def fulltext_search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        words = {w.lower() for w in _WORD.findall(query)}
        scored = [(sum(w in words for w in {x.lower() for x in _WORD.findall(c.content)}), c.id)
                  for c, _ in self.searchable(tenant_id, filters)]
        ranked = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
        return [ChunkRef(chunk_id=cid, score=float(n)) for n, cid in ranked[:max(0, k)]]

    def fetch_chunks(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredChunk]:
        wanted = set(chunk_ids)
        return {c.id: c for c, _ in self.searchable(tenant_id, SearchFilters()) if c.id in wanted}

    def corpus_version(self, tenant_id: str) -> str:
        return str(self.writes.get(tenant_id, 0))

    def touch_documents(self, tenant_id: str, document_ids: Sequence[uuid.UUID]) -> None:
        for doc_id in document_ids:
            if (doc := self.live(tenant_id, doc_id)) is not None:
                self.rows[doc_id] = doc.model_copy(update={"accessed_at": now()})  # not a corpus change

    def healthy(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True
