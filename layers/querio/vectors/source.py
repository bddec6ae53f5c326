"""PostgreSQL reads shared by the mirror, the migration, verification and reconciliation.

"Live vectors" are chunk rows with a non-null embedding whose document is ``completed`` and
not soft-deleted: exactly what pgvector search can return, so counts on both sides compare
like with like. Every read goes through ``PostgresDocumentStore.connection`` (driver errors
become domain errors there).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from querio.adapters.pinecone_vectors import VectorRecord, chunk_metadata
from querio.adapters.postgres.store import PostgresDocumentStore

_LIVE = ("FROM document_chunks c JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
         " WHERE d.deleted_at IS NULL AND d.processing_status = 'completed' AND c.embedding IS NOT NULL")
_COLUMNS = ("c.tenant_id, c.id, c.document_id, c.page_number, c.page_end, c.chunk_index, d.tags, d.uploaded_at,"
            " c.embedding")

ChunkState = Literal["live", "deleted", "hidden"]


@dataclass(frozen=True, slots=True)
class TenantRecord:
    tenant_id: str
    record: VectorRecord


def _record(row: Sequence[Any]) -> TenantRecord:
    tenant, cid, doc, page, page_end, index, tags, uploaded_at, emb = row
    values = np.asarray(emb.to_numpy() if hasattr(emb, "to_numpy") else emb, dtype=np.float32)
    meta = chunk_metadata(document_id=doc, page_number=page, page_end=page_end, chunk_index=index,
                          tags=tags or (), uploaded_at=uploaded_at)
    return TenantRecord(tenant, VectorRecord(cid, values, meta))


def live_counts(store: PostgresDocumentStore, tenants: Iterable[str] | None = None) -> dict[str, int]:
    """Live vectors per tenant (all tenants, or those named)."""
    names = list(tenants) if tenants is not None else None
    with store.connection() as conn:
        rows = conn.execute(
            f"SELECT c.tenant_id, count(*) {_LIVE} AND (%(t)s::text[] IS NULL OR c.tenant_id = ANY(%(t)s::text[]))"
            " GROUP BY c.tenant_id ORDER BY c.tenant_id", {"t": names}).fetchall()
    return {str(t): int(n) for t, n in rows}


def count_after(store: PostgresDocumentStore, after: uuid.UUID | None) -> int:
    """Live vectors whose chunk id sorts after ``after`` (all of them for ``None``)."""
    with store.connection() as conn:
        row = conn.execute(f"SELECT count(*) {_LIVE} AND (%(a)s::uuid IS NULL OR c.id > %(a)s::uuid)",
                           {"a": after}).fetchone()
    return int(row[0]) if row else 0


def batch_after(store: PostgresDocumentStore, after: uuid.UUID | None, limit: int) -> list[TenantRecord]:
    """The next ``limit`` live vectors of every tenant in chunk-id order (a keyset page over the
    primary key, so each page costs O(limit) however far the cursor is)."""
    with store.connection() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} {_LIVE} AND (%(a)s::uuid IS NULL OR c.id > %(a)s::uuid) ORDER BY c.id LIMIT %(n)s",
            {"a": after, "n": limit}).fetchall()
    return [_record(r) for r in rows]


def document_records(store: PostgresDocumentStore, tenant_id: str, document_id: uuid.UUID) -> list[VectorRecord]:
    """The vectors one document must have in the external index: those of a completed document
    or of one stored and waiting for them (``indexing``); empty otherwise, or once deleted."""
    stored = _LIVE.replace("d.processing_status = 'completed'", "d.processing_status IN ('completed', 'indexing')")
    with store.connection() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} {stored} AND c.tenant_id = %s AND c.document_id = %s"
                            " ORDER BY c.chunk_index", (tenant_id, document_id)).fetchall()
    return [_record(r).record for r in rows]


def records_by_id(store: PostgresDocumentStore, tenant_id: str, chunk_ids: Sequence[uuid.UUID]
                  ) -> list[VectorRecord]:
    """Live vectors of the tenant among ``chunk_ids`` (others silently absent)."""
    if not chunk_ids:
        return []
    with store.connection() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} {_LIVE} AND c.tenant_id = %s AND c.id = ANY(%s::uuid[])",
                            (tenant_id, list(chunk_ids))).fetchall()
    return [_record(r).record for r in rows]


def live_ids(store: PostgresDocumentStore, tenant_id: str) -> set[str]:
    """Ids (as strings) of the tenant's live vectors."""
    with store.connection() as conn:
        rows = conn.execute(f"SELECT c.id::text {_LIVE} AND c.tenant_id = %s", (tenant_id,)).fetchall()
    return {r[0] for r in rows}


def chunk_states(store: PostgresDocumentStore, tenant_id: str, chunk_ids: Sequence[uuid.UUID]
                 ) -> dict[uuid.UUID, ChunkState]:
    """For each id that has a chunk row of this tenant: ``live`` (searchable), ``deleted`` (its
    document is soft-deleted: it will never be searchable again) or ``hidden`` (its document is
    pending or processing, e.g. being reprocessed). Ids with no row are absent: orphans."""
    if not chunk_ids:
        return {}
    with store.connection() as conn:
        rows = conn.execute(
            "SELECT c.id, d.deleted_at IS NOT NULL, d.processing_status = 'completed' AND c.embedding IS NOT NULL"
            " FROM document_chunks c JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
            " WHERE c.tenant_id = %s AND c.id = ANY(%s::uuid[])", (tenant_id, list(chunk_ids))).fetchall()
    return {cid: ("deleted" if deleted else "live" if live else "hidden") for cid, deleted, live in rows}
