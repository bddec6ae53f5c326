"""Pinecone records from the system of record's vectors (the ``VectorSource`` port), shared by
the mirror, the migration, verification and reconciliation. No I/O of its own: the reads are
the port's (PostgreSQL: ``querio.adapters.postgres.vector_source``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from querio.adapters.pinecone_vectors import VectorRecord, chunk_metadata
from querio.ports import ChunkVector, VectorSource


@dataclass(frozen=True, slots=True)
class TenantRecord:
    tenant_id: str
    record: VectorRecord


def to_record(v: ChunkVector) -> VectorRecord:
    meta = chunk_metadata(document_id=v.document_id, page_number=v.page_number, page_end=v.page_end,
                          chunk_index=v.chunk_index, tags=v.tags, uploaded_at=v.uploaded_at)
    return VectorRecord(v.chunk_id, v.values, meta)


def batch_after(source: VectorSource, after: uuid.UUID | None, limit: int) -> list[TenantRecord]:
    """The next ``limit`` live vectors of every tenant in chunk-id order, as records."""
    return [TenantRecord(v.tenant_id, to_record(v)) for v in source.batch_after(after, limit)]


def document_records(source: VectorSource, tenant_id: str, document_id: uuid.UUID) -> list[VectorRecord]:
    """The records one document must have in the external index (see ``VectorSource.document_vectors``)."""
    return [to_record(v) for v in source.document_vectors(tenant_id, document_id)]


def records_by_id(source: VectorSource, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> list[VectorRecord]:
    """Live records of the tenant among ``chunk_ids`` (others silently absent)."""
    return [to_record(v) for v in source.vectors_by_id(tenant_id, chunk_ids)]
