"""``VectorSource`` and ``MigrationCheckpoints`` on PostgreSQL: what ``querio vectors`` and the
Pinecone mirror read of the pgvector columns, and the copy's cursor (``vector_migrations``,
migration 0004).

"Live vectors" are chunk rows with a non-null embedding whose document is ``completed`` and
not soft-deleted: exactly what pgvector search can return, so counts on both sides compare
like with like. Every statement goes through ``PostgresDocumentStore.connection`` (its pool,
and driver errors become domain errors there).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from querio.adapters.postgres.store import PostgresDocumentStore
from querio.ports import ChunkState, ChunkVector

_LIVE = ("FROM document_chunks c JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
         " WHERE d.deleted_at IS NULL AND d.processing_status = 'completed' AND c.embedding IS NOT NULL")
_COLUMNS = ("c.tenant_id, c.id, c.document_id, c.page_number, c.page_end, c.chunk_index, d.tags, d.uploaded_at,"
            " c.embedding")
_CHECKPOINT = ("status", "last_chunk_id", "copied", "batches", "runs", "started_at", "updated_at", "finished_at")


def _vector(row: Sequence[Any]) -> ChunkVector:
    tenant, cid, doc, page, page_end, index, tags, uploaded_at, emb = row
    values = np.asarray(emb.to_numpy() if hasattr(emb, "to_numpy") else emb, dtype=np.float32)
    return ChunkVector(tenant_id=tenant, chunk_id=cid, document_id=doc, page_number=page, page_end=page_end,
                       chunk_index=index, tags=tuple(tags or ()), uploaded_at=uploaded_at, values=values)


class PostgresVectorSource:
    """The pgvector columns as a ``VectorSource``, on the document store's pool."""

    def __init__(self, store: PostgresDocumentStore) -> None:
        self.store = store

    def live_counts(self, tenants: Sequence[str] | None = None) -> dict[str, int]:
        names = list(tenants) if tenants is not None else None
        with self.store.connection() as conn:
            rows = conn.execute(
                f"SELECT c.tenant_id, count(*) {_LIVE} AND (%(t)s::text[] IS NULL OR c.tenant_id = ANY(%(t)s::text[]))"
                " GROUP BY c.tenant_id ORDER BY c.tenant_id", {"t": names}).fetchall()
        return {str(t): int(n) for t, n in rows}

    def count_after(self, after: uuid.UUID | None) -> int:
        with self.store.connection() as conn:
            row = conn.execute(f"SELECT count(*) {_LIVE} AND (%(a)s::uuid IS NULL OR c.id > %(a)s::uuid)",
                               {"a": after}).fetchone()
        return int(row[0]) if row else 0

    def batch_after(self, after: uuid.UUID | None, limit: int) -> list[ChunkVector]:
        """A keyset page over the primary key, so each page costs O(limit) however far the cursor is."""
        with self.store.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} {_LIVE} AND (%(a)s::uuid IS NULL OR c.id > %(a)s::uuid) ORDER BY c.id LIMIT %(n)s",
                {"a": after, "n": limit}).fetchall()
        return [_vector(r) for r in rows]

    def document_vectors(self, tenant_id: str, document_id: uuid.UUID) -> list[ChunkVector]:
        stored = _LIVE.replace("d.processing_status = 'completed'",
                               "d.processing_status IN ('completed', 'indexing')")
        with self.store.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} {stored} AND c.tenant_id = %s AND c.document_id = %s"
                                " ORDER BY c.chunk_index", (tenant_id, document_id)).fetchall()
        return [_vector(r) for r in rows]

    def vectors_by_id(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> list[ChunkVector]:
        if not chunk_ids:
            return []
        with self.store.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} {_LIVE} AND c.tenant_id = %s AND c.id = ANY(%s::uuid[])",
                                (tenant_id, list(chunk_ids))).fetchall()
        return [_vector(r) for r in rows]

    def live_ids(self, tenant_id: str) -> set[str]:
        with self.store.connection() as conn:
            rows = conn.execute(f"SELECT c.id::text {_LIVE} AND c.tenant_id = %s", (tenant_id,)).fetchall()
        return {r[0] for r in rows}

    def chunk_states(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ChunkState]:
        if not chunk_ids:
            return {}
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT c.id, d.deleted_at IS NOT NULL, d.processing_status = 'completed' AND c.embedding IS NOT NULL"
                " FROM document_chunks c JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
                " WHERE c.tenant_id = %s AND c.id = ANY(%s::uuid[])", (tenant_id, list(chunk_ids))).fetchall()
        return {cid: ("deleted" if deleted else "live" if live else "hidden") for cid, deleted, live in rows}


class PostgresMigrationCheckpoints:
    """``vector_migrations`` rows (one per migration name) as ``MigrationCheckpoints``."""

    def __init__(self, store: PostgresDocumentStore) -> None:
        self.store = store

    def load(self, name: str) -> dict[str, Any] | None:
        with self.store.connection() as conn:
            row = conn.execute(f"SELECT {', '.join(_CHECKPOINT)} FROM vector_migrations WHERE name = %s",
                               (name,)).fetchone()
        return dict(zip(_CHECKPOINT, row, strict=True)) if row is not None else None

    def begin(self, name: str, *, resumed: bool) -> None:
        with self.store.connection() as conn:
            if resumed:
                conn.execute("UPDATE vector_migrations SET runs = runs + 1, updated_at = now() WHERE name = %s",
                             (name,))
            else:  # a new pass: from the first chunk id
                conn.execute(
                    "INSERT INTO vector_migrations (name, source, target, runs) VALUES (%s, 'pgvector', 'pinecone', 1)"
                    " ON CONFLICT (name) DO UPDATE SET status = 'running', last_chunk_id = NULL, copied = 0,"
                    " batches = 0, runs = 1, started_at = now(), updated_at = now(), finished_at = NULL", (name,))

    def advance(self, name: str, cursor: uuid.UUID, rows: int) -> None:
        with self.store.connection() as conn:
            conn.execute("UPDATE vector_migrations SET last_chunk_id = %s, copied = copied + %s,"
                         " batches = batches + 1, updated_at = now() WHERE name = %s", (cursor, rows, name))

    def finish(self, name: str) -> None:
        with self.store.connection() as conn:
            conn.execute("UPDATE vector_migrations SET status = 'completed', finished_at = now(),"
                         " updated_at = now() WHERE name = %s", (name,))
