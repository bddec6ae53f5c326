"""``VectorStore``, ``VectorSource`` and ``MigrationCheckpoints`` in memory. Like pgvector, the
vectors live in the documents fake's chunk rows (``colocated``: ``complete_document`` writes them)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from querio.models import ChunkRef, DocumentStatus, SearchFilters
from querio.ports import ChunkState, ChunkVector, Vector
from tests.fakes.documents import InMemoryDocuments


class InMemoryVectors:
    name = "memory"
    colocated = True

    def __init__(self, documents: InMemoryDocuments) -> None:
        self.documents = documents

    def upsert(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
               embeddings: Vector, metadata: Sequence[dict[str, Any]]) -> None:
        given = dict(zip(chunk_ids, embeddings, strict=True))
        rows = self.documents.chunks.get(document_id, [])
        self.documents.chunks[document_id] = [(c, given.get(c.id, v)) for c, v in rows]

    def query(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters) -> list[ChunkRef]:
        scored = [(float(np.dot(vector, v)), c.id) for c, v in self.documents.searchable(tenant_id, filters)
                  if v is not None]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [ChunkRef(chunk_id=cid, score=score) for score, cid in scored[:max(0, k)]]

    def delete_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        if self.documents.rows.get(document_id) is not None:
            self.documents.chunks[document_id] = [(c, None) for c, _ in self.documents.chunks[document_id]]


class InMemoryVectorSource:
    def __init__(self, documents: InMemoryDocuments) -> None:
        self.documents = documents

    def _all(self, statuses: tuple[DocumentStatus, ...] = (DocumentStatus.COMPLETED,)) -> list[ChunkVector]:
        out = []
        for doc_id, rows in self.documents.chunks.items():
            doc = self.documents.rows.get(doc_id)
            if doc is None or doc.deleted_at is not None or doc.processing_status not in statuses:
                continue
            out += [ChunkVector(tenant_id=doc.tenant_id, chunk_id=c.id, document_id=doc_id,
                                page_number=c.page_number, page_end=c.page_end, chunk_index=c.chunk_index,
                                tags=tuple(doc.tags), uploaded_at=doc.uploaded_at, values=v)
                    for c, v in rows if v is not None]
        return sorted(out, key=lambda v: v.chunk_id)

    def live_counts(self, tenants: Sequence[str] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self._all():
            if tenants is None or v.tenant_id in tenants:
                counts[v.tenant_id] = counts.get(v.tenant_id, 0) + 1
        return dict(sorted(counts.items()))

    def count_after(self, after: uuid.UUID | None) -> int:
        return sum(after is None or v.chunk_id > after for v in self._all())

    def batch_after(self, after: uuid.UUID | None, limit: int) -> list[ChunkVector]:
        return [v for v in self._all() if after is None or v.chunk_id > after][:limit]

    def document_vectors(self, tenant_id: str, document_id: uuid.UUID) -> list[ChunkVector]:
        mine = [v for v in self._all((DocumentStatus.COMPLETED, DocumentStatus.INDEXING))
                if v.tenant_id == tenant_id and v.document_id == document_id]
        return sorted(mine, key=lambda v: v.chunk_index)

    def vectors_by_id(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> list[ChunkVector]:
        return [v for v in self._all() if v.tenant_id == tenant_id and v.chunk_id in set(chunk_ids)]

    def live_ids(self, tenant_id: str) -> set[str]:
        return {str(v.chunk_id) for v in self._all() if v.tenant_id == tenant_id}

    def chunk_states(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ChunkState]:
        out: dict[uuid.UUID, ChunkState] = {}
        for doc_id, rows in self.documents.chunks.items():
            doc = self.documents.rows.get(doc_id)
            for c, v in rows:
                if doc is not None and doc.tenant_id == tenant_id and c.id in set(chunk_ids):
                    live = doc.processing_status == DocumentStatus.COMPLETED and v is not None
                    out[c.id] = "deleted" if doc.deleted_at else "live" if live else "hidden"
        return out


class InMemoryCheckpoints:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def load(self, name: str) -> dict[str, Any] | None:
        return dict(self.rows[name]) if name in self.rows else None

    def begin(self, name: str, *, resumed: bool) -> None:
        at = dt.datetime.now(dt.UTC)
        if resumed:
            self.rows[name].update(runs=self.rows[name]["runs"] + 1, updated_at=at)
        else:
            self.rows[name] = {"status": "running", "last_chunk_id": None, "copied": 0, "batches": 0, "runs": 1,
                               "started_at": at, "updated_at": at, "finished_at": None}

    def advance(self, name: str, cursor: uuid.UUID, rows: int) -> None:
        row = self.rows[name]
        row.update(last_chunk_id=cursor, copied=row["copied"] + rows, batches=row["batches"] + 1,
                   updated_at=dt.datetime.now(dt.UTC))

    def finish(self, name: str) -> None:
        at = dt.datetime.now(dt.UTC)
        self.rows[name].update(status="completed", finished_at=at, updated_at=at)
