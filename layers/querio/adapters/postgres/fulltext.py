"""The full-text port on PostgreSQL, and the reads that keep an external full-text index in step.

* :class:`PostgresFullText`: ``FullTextSearch`` by the BM25 leg of
  :mod:`querio.adapters.postgres.search` (small, mid and the local stack).
* :class:`PostgresChunkSource`: what OpenSearch (issue 15) is fed from, PostgreSQL being the
  system of record: a document's chunks after its commit, live chunks in chunk-id pages for
  ``querio fulltext backfill``, per-tenant counts and ids for ``verify``/``reconcile``, the
  state of chunk ids a search returned, and the backfill checkpoint. The checkpoint reuses
  ``vector_migrations`` (migration 0004: one row per named pass, ``source``/``target`` free
  text), so no new table is needed.

"Live" is the searchable set: chunks of ``completed``, undeleted documents, as ``LIVE_WHERE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from querio.adapters.postgres.search import TEXT_BUDGET, TEXT_DEPTH, TEXT_RESCORE, fulltext_refs
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.models import ChunkRef, SearchFilters
from querio.ports import IndexedChunk
from querio.text import normalize_line

ChunkState = Literal["live", "deleted", "hidden"]

_JOIN = "FROM document_chunks c JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
_LIVE = f"{_JOIN} WHERE d.deleted_at IS NULL AND d.processing_status = 'completed'"
_COLUMNS = ("c.tenant_id, c.id, c.document_id, c.chunk_index, c.page_number, COALESCE(c.page_end, c.page_number),"
            " c.content, d.tags, d.uploaded_at")


def _chunk(row: Sequence[Any]) -> IndexedChunk:
    tenant, cid, doc, index, page, page_end, content, tags, uploaded_at = row
    return IndexedChunk(tenant_id=tenant, chunk_id=cid, document_id=doc, chunk_index=index, page_number=page,
                        page_end=page_end, content=content, tags=tuple(tags or ()), uploaded_at=uploaded_at)


class PostgresFullText:
    """``FullTextSearch`` on PostgreSQL: Okapi BM25 over ``chunk_terms`` (one statement)."""

    name = "postgres"

    def __init__(self, store: PostgresDocumentStore, *, text_depth: int = TEXT_DEPTH,
                 text_rescore: int = TEXT_RESCORE, budget: int = TEXT_BUDGET) -> None:
        self.store = store
        self.text_depth = text_depth
        self.text_rescore = text_rescore
        self.text_budget = budget

    def search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        # the port normalizes its query itself (idempotent): callers other than the API models
        # (the CLI's verify, the bench) get the normalization documents got at ingest
        query = normalize_line(query)
        if k <= 0 or not query:
            return []
        with self.store.connection() as conn:
            return fulltext_refs(conn, tenant_id, query, k, filters, depth=self.text_depth,
                                 rescore=self.text_rescore, budget=self.text_budget)


class PostgresChunkSource:
    """PostgreSQL reads (and the checkpoint writes) of the full-text sync and its commands."""

    def __init__(self, store: PostgresDocumentStore) -> None:
        self.store = store

    def document_chunks(self, tenant_id: str, document_id: uuid.UUID) -> list[IndexedChunk]:
        """The chunks a document must have in the index: those of a completed document or of
        one stored and waiting for the index (``indexing``); none once it is deleted."""
        with self.store.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} {_JOIN} WHERE d.deleted_at IS NULL"
                " AND d.processing_status IN ('completed', 'indexing') AND c.tenant_id = %s AND c.document_id = %s"
                " ORDER BY c.chunk_index", (tenant_id, document_id)).fetchall()
        return [_chunk(r) for r in rows]

    def chunks_by_id(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> list[IndexedChunk]:
        """Live chunks of the tenant among ``chunk_ids`` (others silently absent)."""
        if not chunk_ids:
            return []
        with self.store.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} {_LIVE} AND c.tenant_id = %s AND c.id = ANY(%s::uuid[])",
                                (tenant_id, list(chunk_ids))).fetchall()
        return [_chunk(r) for r in rows]

    def chunk_states(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ChunkState]:
        """``live`` (searchable), ``deleted`` (its document is soft-deleted) or ``hidden`` (its
        document is pending, processing or indexing: a reprocess) for each id that has a chunk
        row of this tenant; ids with no row are absent (orphans)."""
        if not chunk_ids:
            return {}
        with self.store.connection() as conn:
            rows = conn.execute(
                f"SELECT c.id, d.deleted_at IS NOT NULL, d.processing_status = 'completed' {_JOIN}"
                " WHERE c.tenant_id = %s AND c.id = ANY(%s::uuid[])", (tenant_id, list(chunk_ids))).fetchall()
        return {cid: ("deleted" if deleted else "live" if live else "hidden") for cid, deleted, live in rows}

    def live_counts(self, tenants: Iterable[str] | None = None) -> dict[str, int]:
        """Live chunks per tenant (all tenants, or those named)."""
        names = list(tenants) if tenants is not None else None
        with self.store.connection() as conn:
            rows = conn.execute(
                f"SELECT c.tenant_id, count(*) {_LIVE} AND (%(t)s::text[] IS NULL OR c.tenant_id = ANY(%(t)s::text[]))"
                " GROUP BY c.tenant_id ORDER BY c.tenant_id", {"t": names}).fetchall()
        return {str(t): int(n) for t, n in rows}

    def live_ids(self, tenant_id: str) -> set[str]:
        with self.store.connection() as conn:
            rows = conn.execute(f"SELECT c.id::text {_LIVE} AND c.tenant_id = %s", (tenant_id,)).fetchall()
        return {r[0] for r in rows}

    def count_after(self, after: uuid.UUID | None) -> int:
        """Live chunks of every tenant whose id sorts after ``after`` (all for ``None``)."""
        with self.store.connection() as conn:
            row = conn.execute(f"SELECT count(*) {_LIVE} AND (%(a)s::uuid IS NULL OR c.id > %(a)s::uuid)",
                               {"a": after}).fetchone()
        return int(row[0]) if row else 0

    def batch_after(self, after: uuid.UUID | None, limit: int) -> list[IndexedChunk]:
        """The next ``limit`` live chunks of every tenant in chunk-id order (a keyset page over
        the primary key: each page costs O(limit) however far the cursor is)."""
        with self.store.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} {_LIVE} AND (%(a)s::uuid IS NULL OR c.id > %(a)s::uuid) ORDER BY c.id LIMIT %(n)s",
                {"a": after, "n": limit}).fetchall()
        return [_chunk(r) for r in rows]

    # checkpoint of `querio fulltext backfill` (a row of vector_migrations) ----------------------------
    def checkpoint(self, name: str) -> dict[str, Any] | None:
        keys = ("status", "last_chunk_id", "copied", "batches", "runs", "started_at", "updated_at", "finished_at")
        with self.store.connection() as conn:
            row = conn.execute(f"SELECT {', '.join(keys)} FROM vector_migrations WHERE name = %s", (name,)).fetchone()
        return None if row is None else dict(zip(keys, row, strict=True))

    def begin_pass(self, name: str, *, resumed: bool) -> None:
        with self.store.connection() as conn:
            if resumed:
                conn.execute("UPDATE vector_migrations SET runs = runs + 1, updated_at = now() WHERE name = %s",
                             (name,))
            else:  # a new pass, from the first chunk id
                conn.execute(
                    "INSERT INTO vector_migrations (name, source, target, runs)"
                    " VALUES (%s, 'postgres', 'opensearch', 1)"
                    " ON CONFLICT (name) DO UPDATE SET status = 'running', last_chunk_id = NULL, copied = 0,"
                    " batches = 0, runs = 1, started_at = now(), updated_at = now(), finished_at = NULL", (name,))

    def advance(self, name: str, cursor: uuid.UUID, rows: int) -> None:
        with self.store.connection() as conn:
            conn.execute("UPDATE vector_migrations SET last_chunk_id = %s, copied = copied + %s,"
                         " batches = batches + 1, updated_at = now() WHERE name = %s", (cursor, rows, name))

    def finish_pass(self, name: str) -> None:
        with self.store.connection() as conn:
            conn.execute("UPDATE vector_migrations SET status = 'completed', finished_at = now(), updated_at = now()"
                         " WHERE name = %s", (name,))
