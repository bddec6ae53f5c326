"""``VectorStore`` on pgvector: the vectors are a ``vector(384)`` column of ``document_chunks``.

Because the vectors live in the chunk rows, ``DocumentStore.complete_document`` writes them in
the document's own transaction (``colocated = True``) and a soft delete hides them at once.

Tenant filtering is the hard part of ANN search in one shared table. Measured
(notes/measured-limits.md): ``WHERE tenant = X ORDER BY embedding <=> q LIMIT 10`` on plain
HNSW returned 0.86 rows on average for a tenant owning 1% of the rows, because HNSW finds
the ef_search nearest rows of *all* tenants and filters afterwards. So ``query`` picks a plan:

* **exact** when the tenant is small (at most ``exact_scan_max_rows`` chunk rows), when the
  caller names the documents, or when the HNSW index is absent: the tenant's rows (through
  the btree on tenant) sorted by ``(distance) + 0``, an expression the HNSW index cannot
  answer. Recall 1.0; cost linear in the candidates;
* **HNSW** otherwise, with ``enable_sort = off`` to steer the planner onto the index. How
  it gets ``k`` rows past the tenant and filter predicates depends on the pgvector version,
  read once per store from ``pg_extension``:

  - **>= 0.8** (RDS PostgreSQL 16 ships 0.8.0): ``hnsw.iterative_scan = relaxed_order``, so
    the index keeps producing candidates until ``k`` rows qualify (measured: 10 of 10 rows
    for the 1% tenant, recall 0.81-0.91). Relaxed order may return rows slightly out of
    order, so they are re-sorted by distance. A selective tag/date filter can still exhaust
    the scan's tuple budget; then the exact scan answers.
  - **< 0.8** (the embedded server's 0.6.2): no iterative scan, so one index scan yields at
    most ``hnsw.ef_search`` candidates before filtering. ``ef_search`` is raised to
    ``max(ef_search, 2 * k)`` (capped at 1000, pgvector's limit), and whenever fewer than
    ``k`` rows come back (tenant or any filter predicate removed candidates) the exact scan
    answers instead. A tenant well above ``exact_scan_max_rows`` that owns most of the table
    rarely needs the fallback; a small tenant forced onto HNSW always does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector import Vector as PgVector
from psycopg import sql

from querio.adapters.postgres.store import (
    LIVE_CHUNKS,
    LIVE_WHERE,
    Conn,
    PostgresDocumentStore,
    search_filter_sql,
)
from querio.errors import NotFound, ValidationFailed
from querio.models import ChunkRef, SearchFilters
from querio.ports import Vector

DIMENSION = 384  # the column type: vector(384)
HNSW_INDEX = "idx_chunks_embedding_hnsw"
EF_SEARCH_MAX = 1000  # pgvector rejects a larger hnsw.ef_search
ITERATIVE_SCAN_SINCE = (0, 8)  # pgvector version that added hnsw.iterative_scan

Rows = list[tuple[uuid.UUID, float]]


class PgVectorStore:
    """Nearest chunks by cosine similarity within one tenant, filters applied inside the scan.

    ``ef_search`` is the HNSW candidate list size (raised to ``k``, or to ``2 * k`` on pgvector
    < 0.8, when smaller; at most 1000); ``exact_scan_max_rows`` is the tenant size (chunk
    rows) up to which an exact scan is used (0 = always HNSW when the index exists). Errors
    are translated by the shared store connection (``TransientError``, ``ValidationFailed``, ...).
    """

    name = "pgvector"
    colocated = True

    def __init__(self, store: PostgresDocumentStore, *, ef_search: int = 100,
                 exact_scan_max_rows: int = 20_000) -> None:
        self._store = store
        self.ef_search = ef_search
        self.exact_scan_max_rows = exact_scan_max_rows
        # looked up once per store: the schema and the extension do not change under us
        self._hnsw_index: bool | None = None
        self._pgvector_version: tuple[int, ...] | None = None
        self._lock = threading.Lock()

    # writes ---------------------------------------------------------------------------------------
    def upsert(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
               embeddings: Vector, metadata: Sequence[dict[str, Any]]) -> None:
        """Write ``embeddings`` (``(len(chunk_ids), 384)``) into existing chunk rows.

        Only for back-fills and moves between stores: normal ingest writes vectors in
        ``complete_document``. ``metadata`` is ignored (it is already on the rows). Raises
        ``NotFound`` (and writes nothing) if any id is not a chunk of this tenant's document.
        """
        if embeddings.ndim != 2 or embeddings.shape[0] != len(chunk_ids):
            raise ValidationFailed(f"embeddings shape {embeddings.shape} does not match {len(chunk_ids)} ids")
        if not chunk_ids:
            return
        with self._store.connection() as conn, conn.transaction():
            cur = conn.execute(
                "UPDATE document_chunks c SET embedding = v.e"
                " FROM unnest(%s::uuid[], %s::vector[]) AS v(id, e)"
                " WHERE c.id = v.id AND c.tenant_id = %s AND c.document_id = %s",
                (list(chunk_ids), [PgVector(row) for row in embeddings], tenant_id, document_id),
            )
            expected = len(set(chunk_ids))
            if cur.rowcount != expected:
                raise NotFound(f"{expected - cur.rowcount} of {expected} ids are not chunks of {document_id}")

    def delete_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Null the document's vectors (the rows belong to the document store)."""
        with self._store.connection() as conn:
            conn.execute("UPDATE document_chunks SET embedding = NULL"
                         " WHERE tenant_id = %s AND document_id = %s AND embedding IS NOT NULL",
                         (tenant_id, document_id))

    # reads ----------------------------------------------------------------------------------------
    def query(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Up to ``k`` live chunks nearest to ``vector`` (shape ``(384,)``), best first.

        ``score`` = 1 - cosine distance, in [-1, 1]. Raises ``ValidationFailed`` for a wrong
        shape, ``TransientError`` when the database is unavailable.
        """
        q = _query_vector(vector)
        if k <= 0:
            return []
        with self._store.connection() as conn, conn.transaction():
            if self._use_hnsw(conn, tenant_id, filters):
                rows = self._hnsw(conn, tenant_id, q, k, filters)
                if len(rows) < k and self._needs_exact_fallback(conn, filters):
                    conn.execute("SET LOCAL enable_sort = on")
                    rows = self._exact(conn, tenant_id, q, k, filters)
            else:
                rows = self._exact(conn, tenant_id, q, k, filters)
        rows.sort(key=lambda r: (r[1], r[0]))
        return [ChunkRef(chunk_id=cid, score=1.0 - dist) for cid, dist in rows]

    def hnsw_available(self) -> bool:
        """Whether the database has the HNSW index (migration 0001 creates it)."""
        with self._store.connection() as conn:
            return self._has_hnsw_index(conn)

    def pgvector_version(self) -> tuple[int, ...]:
        """The installed pgvector extension's version, e.g. ``(0, 6, 2)``."""
        with self._store.connection() as conn:
            return self._version(conn)

    def iterative_scan(self) -> bool:
        """Whether the HNSW path uses pgvector's iterative index scans (pgvector >= 0.8)."""
        return self.pgvector_version() >= ITERATIVE_SCAN_SINCE

    def explain(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters, *, hnsw: bool) -> str:
        """``EXPLAIN`` of one path's query (diagnostics, tests)."""
        q = _query_vector(vector)
        with self._store.connection() as conn, conn.transaction():
            if hnsw:
                self._hnsw_settings(conn, k)
            stmt, params = self._statement(tenant_id, q, k, filters, hnsw=hnsw)
            return "\n".join(str(r[0]) for r in conn.execute(sql.SQL("EXPLAIN ") + stmt, params).fetchall())

    # internals ------------------------------------------------------------------------------------
    def _has_hnsw_index(self, conn: Conn) -> bool:
        if self._hnsw_index is None:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (HNSW_INDEX,)).fetchone()
            with self._lock:
                self._hnsw_index = bool(row and row[0])
        return self._hnsw_index

    def _version(self, conn: Conn) -> tuple[int, ...]:
        if self._pgvector_version is None:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            version = _parse_version(str(row[0])) if row and row[0] else (0,)
            with self._lock:
                self._pgvector_version = version
        return self._pgvector_version

    def _needs_exact_fallback(self, conn: Conn, filters: SearchFilters) -> bool:
        """Whether an HNSW answer with fewer than ``k`` rows must be redone exactly.

        pgvector < 0.8: always. One index scan yields at most ef_search candidates, and the
        tenant and filter predicates may remove any number of them, so a short answer says
        nothing about how many rows qualify. (A tenant with fewer than ``k`` matching rows
        also lands here; its exact scan is then cheap or bounded by its own rows.)

        pgvector >= 0.8: only with a tag or date filter. The iterative scan keeps going until
        ``k`` rows pass, but a selective document-level filter can exhaust its tuple budget
        (hnsw.max_scan_tuples) first; such candidates are few and reachable through the
        documents' indexes. Without one, a short answer means the tenant has fewer rows.
        """
        if self._version(conn) < ITERATIVE_SCAN_SINCE:
            return True
        return bool(filters.tags or filters.uploaded_after or filters.uploaded_before)

    def _use_hnsw(self, conn: Conn, tenant_id: str, filters: SearchFilters) -> bool:
        if filters.document_ids or not self._has_hnsw_index(conn):
            return False
        if self.exact_scan_max_rows <= 0:
            return True
        # O(1): tenant_usage.chunk_rows is maintained in the transactions that write chunks.
        # It counts rows of deleted or unprocessed documents too; an upper bound only moves a
        # tenant to the HNSW path a little early.
        row = conn.execute("SELECT chunk_rows FROM tenant_usage WHERE tenant_id = %s",
                           (tenant_id,)).fetchone()
        return row is not None and int(row[0]) > self.exact_scan_max_rows

    @staticmethod
    def _statement(tenant_id: str, q: PgVector, k: int, filters: SearchFilters, *, hnsw: bool
                   ) -> tuple[sql.Composed, dict[str, Any]]:
        where, params = search_filter_sql(filters)
        if hnsw:
            # ORDER BY the operator expression itself, so the HNSW index can produce the order
            template = (
                "SELECT c.id, c.embedding <=> %(q)s AS dist FROM {live}"
                " WHERE {live_where} AND c.embedding IS NOT NULL {filters}"
                " ORDER BY c.embedding <=> %(q)s LIMIT %(k)s"
            )
        else:
            # "+ 0": an HNSW index answers only ORDER BY embedding <=> q itself, so ordering by any
            # other expression forces the exact plan (rows through the btree on tenant, then a
            # top-k sort). It replaced a MATERIALIZED CTE that copied every candidate vector first
            # (bench scale section, product path at 10K rows: p50 19.9 ms -> 5.6 ms, recall 1.0).
            template = (
                "SELECT c.id, c.embedding <=> %(q)s AS dist FROM {live}"
                " WHERE {live_where} AND c.embedding IS NOT NULL {filters}"
                " ORDER BY (c.embedding <=> %(q)s) + 0, c.id LIMIT %(k)s"
            )
        stmt = sql.SQL(template).format(live=LIVE_CHUNKS, live_where=LIVE_WHERE, filters=where)
        params.update(tenant=tenant_id, q=q, k=k)
        return stmt, params

    def _exact(self, conn: Conn, tenant_id: str, q: PgVector, k: int, filters: SearchFilters) -> Rows:
        stmt, params = self._statement(tenant_id, q, k, filters, hnsw=False)
        return [(r[0], float(r[1])) for r in conn.execute(stmt, params).fetchall()]

    def _hnsw_settings(self, conn: Conn, k: int) -> None:
        # set_config(..., true) == SET LOCAL: scoped to the caller's transaction, so a pooled
        # connection never leaks these settings to its next user. enable_sort = off makes any
        # plan with a Sort node lose, which leaves the HNSW index scan as the way to order rows.
        if self._version(conn) >= ITERATIVE_SCAN_SINCE:
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                " set_config('enable_sort', 'off', true)",
                (str(min(EF_SEARCH_MAX, max(self.ef_search, k))),),
            )
        else:
            # no iterative scan: one scan returns at most ef_search candidates, before the
            # tenant and filter predicates; a wider list leaves more of them to qualify
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_sort', 'off', true)",
                (str(min(EF_SEARCH_MAX, max(self.ef_search, 2 * k))),),
            )

    def _hnsw(self, conn: Conn, tenant_id: str, q: PgVector, k: int, filters: SearchFilters) -> Rows:
        self._hnsw_settings(conn, k)
        stmt, params = self._statement(tenant_id, q, k, filters, hnsw=True)
        return [(r[0], float(r[1])) for r in conn.execute(stmt, params).fetchall()]


def _query_vector(vector: Vector) -> PgVector:
    q = np.asarray(vector, dtype=np.float32)
    if q.shape != (DIMENSION,):
        raise ValidationFailed(f"query vector has shape {q.shape}, expected ({DIMENSION},)")
    if not np.isfinite(q).all():
        raise ValidationFailed("query vector has NaN or infinite values")
    return PgVector(q)


def _parse_version(text: str) -> tuple[int, ...]:
    """``'0.6.2'`` → ``(0, 6, 2)``; a non-numeric part ends the tuple (``'0.8.0-dev'`` → ``(0, 8)``)."""
    parts: list[int] = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts) or (0,)
