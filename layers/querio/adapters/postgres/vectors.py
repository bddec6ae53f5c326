"""``VectorStore`` on pgvector: the vectors are a ``vector(384)`` column of ``document_chunks``.

Because the vectors live in the chunk rows, ``DocumentStore.complete_document`` writes them in
the document's own transaction (``colocated = True``) and a soft delete hides them at once.

Tenant filtering is the hard part of ANN search in one shared table. Measured
(notes/measured-limits.md): ``WHERE tenant = X ORDER BY embedding <=> q LIMIT 10`` on plain
HNSW returned 0.86 rows on average for a tenant owning 1% of the rows, because HNSW finds
the ef_search nearest rows of *all* tenants and filters afterwards. So ``query`` (and the
one-statement hybrid search, ``querio.adapters.postgres.search``) picks a plan
(:meth:`PgVectorStore.plan`):

* **tenant HNSW** when the tenant has its own partial index (``tenant_index_name``: an HNSW
  graph over that tenant's rows only, ``WHERE tenant_id = '<tenant>'``), built by
  :meth:`PgVectorStore.ensure_tenant_index` once the tenant passes ``tenant_index_min_rows``
  chunk rows (after an ingest, or ``querio vectors index``). Every candidate it yields is the
  tenant's, so ef_search candidates are not thinned by other tenants. The tenant is written
  into the SQL as a literal: only then can the planner prove the index's predicate (a
  parameter in a generic prepared plan cannot). Any pgvector version; on >= 0.8 with an
  iterative scan as well, so filters do not thin the answer either. This is what RDS gets too.
* **exact** when the tenant is small (at most ``exact_scan_max_rows`` chunk rows), when the
  caller names the documents, when the filters keep at most ``exact_scan_max_rows`` rows
  (``filter_reach``: a tag, a page range, dates), or when no HNSW index is there: the rows
  (through the btree on tenant, or the filter's own indexes) sorted by ``(distance) + 0``, an
  expression the HNSW index cannot answer. Recall 1.0; cost linear in the candidates. Under a
  filter this is also the cheaper plan: the HNSW candidates of a query cluster in a few
  documents and pages, so a filter rejects most of them (100K tenant, pages 10-20: 0 of
  1,000 candidates kept for some queries, and on 0.6.2 the exact re-run came after);
* **shared HNSW** otherwise (a big tenant before its own index exists), with
  ``enable_sort = off`` to steer the planner onto the index. How it gets ``k`` rows past the
  tenant and filter predicates depends on the pgvector version, read once per store from
  ``pg_extension``:

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

import hashlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pgvector import Vector as PgVector
from psycopg import sql

from querio.adapters.postgres.store import (
    LIVE_CHUNKS,
    Conn,
    PostgresDocumentStore,
    filter_reach,
    live_where,
    search_filter_sql,
)
from querio.errors import NotFound, ValidationFailed
from querio.models import ChunkRef, SearchFilters
from querio.ports import Vector

log = logging.getLogger(__name__)

DIMENSION = 384  # the column type: vector(384)
HNSW_INDEX = "idx_chunks_embedding_hnsw"
#: the per-tenant partial indexes are named this prefix + a hash of the tenant id
TENANT_INDEX_PREFIX = "idx_chunks_hnsw_t_"
EF_SEARCH_MAX = 1000  # pgvector rejects a larger hnsw.ef_search
ITERATIVE_SCAN_SINCE = (0, 8)  # pgvector version that added hnsw.iterative_scan
#: seconds a tenant's plan facts (row count, own index) are reused before they are read again:
#: they only move the tenant between plans, each of which answers correctly
PLAN_TTL_S = 30.0

Rows = list[tuple[uuid.UUID, float]]
PlanKind = Literal["exact", "tenant_hnsw", "hnsw"]


def tenant_index_name(tenant_id: str) -> str:
    """The partial HNSW index of one tenant (a hash: tenant ids are not identifiers)."""
    return TENANT_INDEX_PREFIX + hashlib.sha256(tenant_id.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class VectorPlan:
    """How one tenant's vector query runs (see the module docstring)."""

    kind: PlanKind
    iterative: bool  # pgvector >= 0.8: hnsw.iterative_scan
    ef_search: int  # for the HNSW kinds

    @property
    def hnsw(self) -> bool:
        return self.kind != "exact"


class PgVectorStore:
    """Nearest chunks by cosine similarity within one tenant, filters applied inside the scan.

    ``ef_search`` is the HNSW candidate list size (raised to ``k``, or to ``2 * k`` on pgvector
    < 0.8, when smaller; at most 1000); ``exact_scan_max_rows`` is the tenant size (chunk
    rows) up to which an exact scan is used (0 = always HNSW when an index exists);
    ``tenant_index_min_rows`` the size from which a tenant gets its own partial HNSW index
    (0 = never). Errors are translated by the shared store connection (``TransientError``,
    ``ValidationFailed``, ...).
    """

    name = "pgvector"
    colocated = True

    def __init__(self, store: PostgresDocumentStore, *, ef_search: int = 100,
                 exact_scan_max_rows: int = 20_000, tenant_index_min_rows: int = 0) -> None:
        self._store = store
        self.ef_search = ef_search
        self.exact_scan_max_rows = exact_scan_max_rows
        self.tenant_index_min_rows = tenant_index_min_rows
        # looked up once per store: the schema and the extension do not change under us
        self._hnsw_index: bool | None = None
        self._pgvector_version: tuple[int, ...] | None = None
        #: tenant -> (read at, chunk rows, own index valid)
        self._tenants: dict[str, tuple[float, int, bool]] = {}
        self._lock = threading.Lock()
        # per pooled connection: the HNSW settings its session holds (session_settings)
        self._session_hnsw: weakref.WeakKeyDictionary[Conn, tuple[int, bool]] = weakref.WeakKeyDictionary()

    @property
    def store(self) -> PostgresDocumentStore:
        return self._store

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

    # per-tenant indexes ---------------------------------------------------------------------------
    def ensure_tenant_index(self, tenant_id: str, *, min_rows: int | None = None) -> bool:
        """Build the tenant's partial HNSW index if it has more than ``min_rows`` chunk rows
        (default ``tenant_index_min_rows``; 0 = never) and no valid one yet. Returns whether
        an index was built. ``CREATE INDEX CONCURRENTLY``: searches and ingests go on during
        the build; an invalid leftover of a failed build is dropped first."""
        threshold = self.tenant_index_min_rows if min_rows is None else min_rows
        if threshold <= 0:
            return False
        name = tenant_index_name(tenant_id)
        with self._store.connection() as conn:
            rows, valid = self._tenant_facts(conn, tenant_id, fresh=True)
            if valid or rows <= threshold:
                return False
            with_params = self._index_options(conn)
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
            # a build takes seconds to many minutes: no statement timeout, and room for the whole
            # graph in memory (~3 KB a row: the vector and its neighbour lists; a graph that
            # outgrows maintenance_work_mem is built far more slowly). Session settings (CREATE
            # INDEX CONCURRENTLY cannot run in a transaction), reset before the connection goes back.
            memory_mb = min(4096, max(64, rows * 3 // 1024))
            conn.execute("SELECT set_config('statement_timeout', '0', false),"
                         " set_config('maintenance_work_mem', %s, false)", (f"{memory_mb}MB",))
            started = time.perf_counter()
            try:
                conn.execute(sql.SQL(
                    "CREATE INDEX CONCURRENTLY {} ON document_chunks USING hnsw (embedding vector_cosine_ops){}"
                    " WHERE tenant_id = {}").format(sql.Identifier(name), sql.SQL(with_params),
                                                   sql.Literal(tenant_id)))
            finally:
                conn.execute("RESET statement_timeout; RESET maintenance_work_mem")
                self._store.reset_session(conn)
            log.info("built %s for tenant %r (%d rows) in %.1f s", name, tenant_id, rows,
                     time.perf_counter() - started)
        with self._lock:
            self._tenants.pop(tenant_id, None)
        return True

    def index_due(self, tenant_id: str) -> bool:
        """Whether ``ensure_tenant_index`` would build (fresh facts, one read)."""
        if self.tenant_index_min_rows <= 0:
            return False
        with self._store.connection() as conn:
            rows, valid = self._tenant_facts(conn, tenant_id, fresh=True)
        return not valid and rows > self.tenant_index_min_rows

    def ensure_tenant_indexes(self, *, min_rows: int | None = None) -> list[str]:
        """``ensure_tenant_index`` for every tenant above the threshold; the tenants indexed now."""
        threshold = self.tenant_index_min_rows if min_rows is None else min_rows
        if threshold <= 0:
            return []
        with self._store.connection() as conn:
            tenants = [r[0] for r in conn.execute(
                "SELECT tenant_id FROM tenant_usage WHERE chunk_rows > %s ORDER BY tenant_id", (threshold,))]
        return [t for t in tenants if self.ensure_tenant_index(t, min_rows=threshold)]

    def _index_options(self, conn: Conn) -> str:
        """`` WITH (m = .., ef_construction = ..)`` of the shared index, so every graph is built alike."""
        row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (HNSW_INDEX,)).fetchone()
        definition = str(row[0]) if row else ""
        at = definition.find(" WITH (")
        return definition[at:definition.index(")", at) + 1] if at >= 0 else " WITH (m = 16, ef_construction = 64)"

    # reads ----------------------------------------------------------------------------------------
    def query(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Up to ``k`` live chunks nearest to ``vector`` (shape ``(384,)``), best first.

        ``score`` = 1 - cosine distance, in [-1, 1]. Raises ``ValidationFailed`` for a wrong
        shape, ``TransientError`` when the database is unavailable.
        """
        q = query_vector(vector)
        if k <= 0:
            return []
        with self._store.connection() as conn, conn.transaction():
            plan = self.plan(conn, tenant_id, filters, k)
            rows = self._run(conn, tenant_id, q, k, filters, plan)
            if plan.hnsw and len(rows) < k and self.needs_exact_fallback(plan, filters):
                conn.execute("SET LOCAL enable_sort = on")
                rows = self._run(conn, tenant_id, q, k, filters, self.exact_plan())
        rows.sort(key=lambda r: (r[1], r[0]))
        return [ChunkRef(chunk_id=cid, score=1.0 - dist) for cid, dist in rows]

    def hnsw_available(self) -> bool:
        """Whether the database has the shared HNSW index (migration 0001 creates it)."""
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
        """``EXPLAIN`` of one path's query (diagnostics, tests); ``hnsw`` = the plan the tenant
        gets when not exact (its own index when it has one, else the shared one)."""
        q = query_vector(vector)
        with self._store.connection() as conn, conn.transaction():
            plan = self.plan(conn, tenant_id, filters, k, force_hnsw=True) if hnsw else self.exact_plan()
            self.apply_settings(conn, plan)
            stmt, params = self.statement(tenant_id, q, k, filters, plan)
            return "\n".join(str(r[0]) for r in conn.execute(sql.SQL("EXPLAIN ") + stmt, params).fetchall())

    # plans (shared with the hybrid search) ----------------------------------------------------------
    def exact_plan(self) -> VectorPlan:
        return VectorPlan("exact", False, 0)

    def plan(self, conn: Conn, tenant_id: str, filters: SearchFilters, k: int, *,
             force_hnsw: bool = False, kept: int | None = None) -> VectorPlan:
        """The plan for ``k`` nearest rows of ``tenant_id`` under ``filters`` (module docstring).
        Reads the tenant's facts at most every ``PLAN_TTL_S`` seconds (no round trip otherwise).
        ``kept``: about how many chunks the filters keep (``filter_reach`` with a cap of at least
        ``exact_scan_max_rows``), if the caller has it; read here when needed otherwise."""
        if filters.document_ids and not force_hnsw:
            return self.exact_plan()
        rows, own_index = self._tenant_facts(conn, tenant_id)
        if not force_hnsw and not filters.is_empty() and self.exact_scan_max_rows > 0 \
                and (own_index or rows > self.exact_scan_max_rows):
            # a filter keeping few rows: scanning them exactly is cheaper than an HNSW scan whose
            # candidates it would mostly reject (on < 0.8, then redone exactly: two statements)
            if kept is None:
                kept = filter_reach(conn, tenant_id, filters, self.exact_scan_max_rows)
            if kept <= self.exact_scan_max_rows:
                return self.exact_plan()
        iterative = self._version(conn) >= ITERATIVE_SCAN_SINCE
        ef = min(EF_SEARCH_MAX, max(self.ef_search, k if iterative else 2 * k))
        if not iterative and (filters.page_from is not None or filters.page_to is not None
                              or filters.uploaded_after or filters.uploaded_before):
            # a wide page or date range (a narrow one was planned exact above): the widest
            # candidate list, so that fewer searches end in the exact re-run over the whole range
            # (a query's neighbours cluster in a few pages, so a range rejects most candidates)
            ef = EF_SEARCH_MAX
        if own_index:
            return VectorPlan("tenant_hnsw", iterative, ef)
        if not self._has_hnsw_index(conn):
            return self.exact_plan()
        if force_hnsw or (self.exact_scan_max_rows > 0 and rows > self.exact_scan_max_rows) \
                or self.exact_scan_max_rows <= 0:
            return VectorPlan("hnsw", iterative, ef)
        return self.exact_plan()

    def needs_exact_fallback(self, plan: VectorPlan, filters: SearchFilters) -> bool:
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
        if not plan.iterative:
            return True
        return bool(filters.tags or filters.uploaded_after or filters.uploaded_before)

    def session_settings(self, conn: Conn, plan: VectorPlan) -> bool:
        """A tenant's own index: put the plan's HNSW settings on the connection's session (only
        when they differ from what this connection was last given) and return ``True``: the
        statement needs no transaction. They steer HNSW index scans alone, and every statement
        of ours sets the value it needs. ``False`` for the other plans: the shared index needs
        ``enable_sort`` off, which must not outlive one transaction (``apply_settings``).

        Why: ``BEGIN``, ``SET LOCAL`` and ``COMMIT`` were three of a hybrid search's five round
        trips."""
        if plan.kind != "tenant_hnsw":
            return False
        wanted = (plan.ef_search, plan.iterative)
        if self._session_hnsw.get(conn) != wanted:
            if plan.iterative:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, false),"
                             " set_config('hnsw.iterative_scan', 'relaxed_order', false)", (str(plan.ef_search),))
            else:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(plan.ef_search),))
            self._session_hnsw[conn] = wanted
        return True

    def apply_settings(self, conn: Conn, plan: VectorPlan) -> None:
        """The plan's session settings, for the caller's transaction only.

        set_config(..., true) == SET LOCAL: a pooled connection never leaks them to its next
        user. The shared index needs enable_sort = off: any plan with a Sort node then loses,
        which leaves the HNSW index scan as the way to order rows. A tenant's own index is
        chosen by the planner unaided (it is small and its predicate matches)."""
        if not plan.hnsw:
            return
        enable_sort = "off" if plan.kind == "hnsw" else "on"
        if plan.iterative:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_sort', %s, true),"
                         " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                         (str(plan.ef_search), enable_sort))
        else:  # no such setting before 0.8
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_sort', %s, true)",
                         (str(plan.ef_search), enable_sort))

    @staticmethod
    def statement(tenant_id: str, q: PgVector, k: int, filters: SearchFilters, plan: VectorPlan
                  ) -> tuple[sql.Composed, dict[str, Any]]:
        """``SELECT id, dist`` of the ``k`` nearest live chunks under ``plan`` (unordered by id)."""
        where, params = search_filter_sql(filters)
        # HNSW: ORDER BY the operator expression itself, so the index can produce the order.
        # Exact: "+ 0": an HNSW index answers only ORDER BY embedding <=> q itself, so ordering by
        # any other expression forces the exact plan (rows through the btree on tenant, then a
        # top-k sort). It replaced a MATERIALIZED CTE that copied every candidate vector first
        # (bench scale section, product path at 10K rows: p50 19.9 ms -> 5.6 ms, recall 1.0).
        order = sql.SQL("c.embedding <=> %(q)s" if plan.hnsw else "(c.embedding <=> %(q)s) + 0, c.id")
        # a literal tenant lets the planner match the tenant's partial index (module docstring)
        tenant = sql.Literal(tenant_id) if plan.kind == "tenant_hnsw" else sql.SQL("%(tenant)s")
        stmt = sql.SQL(
            "SELECT c.id, c.embedding <=> %(q)s AS dist FROM {live}"
            " WHERE {live_where} AND c.embedding IS NOT NULL {filters}"
            " ORDER BY {order} LIMIT %(k)s"
        ).format(live=LIVE_CHUNKS, live_where=live_where(tenant), filters=where, order=order)
        params.update(tenant=tenant_id, q=q, k=k)
        return stmt, params

    # internals ------------------------------------------------------------------------------------
    def _run(self, conn: Conn, tenant_id: str, q: PgVector, k: int, filters: SearchFilters,
             plan: VectorPlan) -> Rows:
        self.apply_settings(conn, plan)
        stmt, params = self.statement(tenant_id, q, k, filters, plan)
        return [(r[0], float(r[1])) for r in conn.execute(stmt, params).fetchall()]

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

    def _tenant_facts(self, conn: Conn, tenant_id: str, *, fresh: bool = False) -> tuple[int, bool]:
        """(chunk rows, has a valid own index), cached for ``PLAN_TTL_S``.

        O(1): tenant_usage.chunk_rows is maintained in the transactions that write chunks. It
        counts rows of deleted or unprocessed documents too; an upper bound only moves a
        tenant to the HNSW path a little early."""
        now = time.monotonic()
        cached = self._tenants.get(tenant_id)
        if cached is not None and not fresh and now - cached[0] < PLAN_TTL_S:
            return cached[1], cached[2]
        row = conn.execute(
            "SELECT (SELECT chunk_rows FROM tenant_usage WHERE tenant_id = %s),"
            " (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s))",
            (tenant_id, tenant_index_name(tenant_id))).fetchone()
        rows, valid = (int(row[0] or 0), bool(row[1])) if row else (0, False)
        with self._lock:
            self._tenants[tenant_id] = (now, rows, valid)
        return rows, valid


def query_vector(vector: Vector) -> PgVector:
    """A validated ``(384,)`` query vector as pgvector's type."""
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
