"""The storage ports on PostgreSQL (psycopg 3 + a connection pool).

Every query is parameterised; the few dynamic fragments (search filters) are assembled from
constant SQL with :mod:`psycopg.sql`. Driver errors are translated in one place,
:meth:`PostgresDocumentStore.connection`:

* ``psycopg.OperationalError`` (server gone, pool timeout, statement timeout, deadlock,
  serialization failure) → :class:`~querio.errors.TransientError` (retrying may succeed);
* data/check/not-null violations → :class:`~querio.errors.ValidationFailed`;
* unique violations → :class:`~querio.errors.Conflict`; foreign-key violations →
  :class:`~querio.errors.NotFound` (the parent vanished under us).

A chunk is *live* when its document is not soft-deleted and is ``completed``; every search
and fetch joins ``documents`` to enforce that, so a soft delete hides chunks at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from pgvector import Vector as PgVector
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from querio.errors import Conflict, NotFound, TransientError, ValidationFailed
from querio.models import (
    ChatMessage,
    ChatRole,
    ChatSession,
    ChunkDraft,
    ChunkRef,
    Document,
    DocumentStatus,
    NewDocument,
    SearchFilters,
    TenantStats,
)
from querio.ports import QueryRecord, StoredChunk, Vector

log = logging.getLogger(__name__)
#: Pooled connections idle longer than this (seconds) are pinged before use.
IDLE_CHECK_S = 10.0

Conn = psycopg.Connection[Any]

#: ``accessed_at`` is only rewritten when older than this: the archive policy thinks in days,
#: and rewriting a hot document's row on every search would bloat the table.
ACCESS_GRANULARITY_S = 3600

# The join every search and fetch uses. ``c.tenant_id`` is denormalised onto chunks so the
# tenant predicate hits the chunk indexes directly; joining on (id, tenant_id) matches the
# composite foreign key.
LIVE_CHUNKS = sql.SQL(
    "document_chunks c JOIN documents d ON d.id = c.document_id AND d.tenant_id = c.tenant_id"
)


def live_where(tenant: sql.Composable | None = None) -> sql.Composed:
    """The liveness predicate of ``LIVE_CHUNKS`` for one tenant (the ``%(tenant)s`` placeholder by
    default; a literal where the planner must see the value, e.g. to match a partial index)."""
    tenant = sql.Placeholder("tenant") if tenant is None else tenant
    return sql.SQL("c.tenant_id = {} AND d.deleted_at IS NULL AND d.processing_status = 'completed'").format(tenant)


LIVE_WHERE = live_where()

#: Okapi BM25 parameters: the usual defaults (Robertson & Zaragoza 2009; Lucene's too).
BM25_K1 = 1.2
BM25_B = 0.75

_CHUNK_COPY = sql.SQL(
    "COPY document_chunks (id, document_id, tenant_id, content, chunk_index, page_number, page_end,"
    " char_start, char_end, character_count, token_count, section, embedding) FROM STDIN (FORMAT BINARY)"
)
_CHUNK_COPY_TYPES = ["uuid", "uuid", "text", "text", "int4", "int4", "int4", "int4", "int4", "int4",
                     "int4", "text", "vector"]


def search_filter_sql(filters: SearchFilters, *, documents_only: bool = False
                      ) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL fragment ``" AND ..."`` (possibly empty) restricting ``c`` (chunks) / ``d`` (documents).

    Shared by full-text and vector search so both halves of hybrid search filter identically,
    inside the query. Semantics: ``document_ids`` and ``tags`` match ANY listed value (an empty
    list means "no filter", as in ``SearchFilters.is_empty``); the page range keeps chunks that
    overlap ``[page_from, page_to]``; ``uploaded_after`` is inclusive, ``uploaded_before``
    exclusive; naive datetimes are taken as UTC. Parameter names start with ``f_``.
    ``documents_only``: the document-level part alone, over ``d`` only (no page range).
    """
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if filters.document_ids:
        parts.append(sql.SQL("d.id = ANY(%(f_doc_ids)s::uuid[])" if documents_only
                             else "c.document_id = ANY(%(f_doc_ids)s::uuid[])"))
        params["f_doc_ids"] = list(filters.document_ids)
    if filters.tags:
        parts.append(sql.SQL("d.tags && %(f_tags)s::text[]"))
        params["f_tags"] = list(filters.tags)
    if filters.page_from is not None and not documents_only:
        parts.append(sql.SQL("COALESCE(c.page_end, c.page_number) >= %(f_page_from)s"))
        params["f_page_from"] = filters.page_from
    if filters.page_to is not None and not documents_only:
        parts.append(sql.SQL("c.page_number <= %(f_page_to)s"))
        params["f_page_to"] = filters.page_to
    if filters.uploaded_after is not None:
        parts.append(sql.SQL("d.uploaded_at >= %(f_after)s"))
        params["f_after"] = _utc(filters.uploaded_after)
    if filters.uploaded_before is not None:
        parts.append(sql.SQL("d.uploaded_at < %(f_before)s"))
        params["f_before"] = _utc(filters.uploaded_before)
    return sql.SQL("").join(sql.SQL(" AND ") + p for p in parts), params


def document_filters(filters: SearchFilters) -> bool:
    """Whether ``filters`` has a document-level part (documents, tags, upload dates)."""
    return bool(filters.document_ids or filters.tags or filters.uploaded_after or filters.uploaded_before)


def filter_reach(conn: Conn, tenant_id: str, filters: SearchFilters, cap: int) -> int:
    """About how many of the tenant's chunks ``filters`` keep, for choosing a search plan (each
    plan answers correctly; this only decides which is fast). One round trip, bounded cost:

    * the document-level part: the kept documents' ``chunk_count`` summed (the documents'
      indexes; exact for live documents);
    * a page range: the tenant's chunks whose first page lies in it, counted through
      ``idx_chunks_tenant_pages`` and stopped past ``cap`` (chunks that start before the range
      and reach into it are not counted: chunks do not span pages today).

    The smaller of the two; ``cap + 1`` when the count stopped; the tenant's whole size is not
    read (an empty filter returns ``cap + 1``)."""
    counts: list[sql.Composable] = []
    where, params = search_filter_sql(filters, documents_only=True)
    params.update(tenant=tenant_id, cap=cap)
    if document_filters(filters):
        counts.append(sql.SQL(
            "(SELECT COALESCE(sum(d.chunk_count), 0) FROM documents d WHERE d.tenant_id = %(tenant)s"
            " AND d.deleted_at IS NULL AND d.processing_status = 'completed' {})").format(where))
    if filters.page_from is not None or filters.page_to is not None:
        counts.append(sql.SQL(
            "(SELECT count(*) FROM (SELECT 1 FROM document_chunks c WHERE c.tenant_id = %(tenant)s"
            " AND c.page_number >= %(lo)s AND c.page_number <= %(hi)s LIMIT %(cap)s + 1) x)"))
        params.update(lo=filters.page_from if filters.page_from is not None else -(2**31),
                      hi=filters.page_to if filters.page_to is not None else 2**31 - 1)
    if not counts:
        return cap + 1
    row = conn.execute(sql.SQL("SELECT LEAST({})").format(sql.SQL(", ").join(counts)), params).fetchone()
    return min(int(row[0]), cap + 1) if row else cap + 1


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


class PostgresDocumentStore:
    """The storage ports on PostgreSQL 13+ with pgvector (schema: ``migrations/``): one pool
    behind ``DocumentStore``, ``ChatStore``, ``QueryLog``, ``S3Objects``, ``Sweeps`` and
    ``IngestParts`` (one class, because several of their writes share a transaction: a
    completion retires an S3 key's older documents, a part's last store assembles its document).

    ``conninfo`` is a libpq DSN/URL. The pool opens on first use, so the store can be built
    before ``migrate()`` runs (the vector type must exist by the first query). Users are
    identified by ``(tenant_id, subject)`` and mapped to ``users.id`` by an upsert cached in
    process. ``statement_timeout_ms`` caps every statement (a cancelled one raises
    ``TransientError``); ``connect_timeout_s`` caps waiting for a pooled connection.
    """

    def __init__(self, conninfo: str, *, pool_min: int = 1, pool_max: int = 4,
                 statement_timeout_ms: int = 30_000, connect_timeout_s: float = 10.0,
                 user_cache_size: int = 1024, application_name: str = "querio") -> None:
        self._conninfo = conninfo
        self._pool_min = pool_min
        self._pool_max = max(pool_max, pool_min)
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout_s = connect_timeout_s
        self._application_name = application_name
        self._pool: ConnectionPool[Conn] | None = None
        self._pool_lock = threading.Lock()
        #: when each pooled connection was last handed back (monotonic seconds)
        self._returned_at: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._users: OrderedDict[tuple[str, str], uuid.UUID] = OrderedDict()
        self._users_lock = threading.Lock()
        self._user_cache_size = user_cache_size

    # plumbing ------------------------------------------------------------------------------------
    def _configure(self, conn: Conn) -> None:
        """Per new connection: session settings and the pgvector adapters."""
        # work_mem: a search's BM25 aggregates a few thousand postings; at the default 4 MB its
        # hash aggregate spilled to disk (bench scale section, 10K chunks)
        conn.execute("SELECT set_config('statement_timeout', %s, false),"
                     " set_config('TimeZone', 'UTC', false), set_config('work_mem', '32MB', false)",
                     (str(self._statement_timeout_ms),))
        try:
            register_vector(conn)  # dumpers/loaders for vector and bit (and halfvec/sparsevec on >= 0.7)
        except psycopg.ProgrammingError:
            # the vector type is missing: migrations have not run yet on this database.
            log.warning("pgvector type not found; run querio.adapters.postgres.migrate.migrate() first")

    def reset_session(self, conn: Conn) -> None:
        """Put a pooled connection's session settings back (after a maintenance statement)."""
        self._configure(conn)

    def _get_pool(self) -> ConnectionPool[Conn]:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    pool: ConnectionPool[Conn] = ConnectionPool(
                        self._conninfo,
                        min_size=self._pool_min,
                        max_size=self._pool_max,
                        # autocommit: single statements commit alone; multi-statement work
                        # uses explicit ``conn.transaction()`` blocks
                        kwargs={"autocommit": True, "application_name": self._application_name,
                                "connect_timeout": max(1, int(self._connect_timeout_s))},
                        configure=self._configure,
                        # a pooled connection may be dead after a Lambda freeze or a failover
                        check=self._check_if_idle,
                        timeout=self._connect_timeout_s,
                        name="querio",
                        open=False,
                    )
                    pool.open(wait=False)
                    self._pool = pool
        return self._pool

    def _check_if_idle(self, conn: Conn) -> None:
        """Ping a connection on checkout only if it sat idle for ``IDLE_CHECK_S``: a search takes
        about five checkouts, and pinging each cost a round trip (~1 ms here, more to RDS); a
        connection used a moment ago is alive, one idle across a Lambda freeze may not be."""
        if time.monotonic() - self._returned_at.get(conn, 0.0) > IDLE_CHECK_S:
            ConnectionPool.check_connection(conn)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Conn]:
        """A pooled autocommit connection, with driver errors translated to domain errors.

        Public for co-located adapters (``PgVectorStore``) that share this pool.
        """
        try:
            with self._get_pool().connection(timeout=timeout) as conn:
                try:
                    yield conn
                finally:
                    self._returned_at[conn] = time.monotonic()
        except psycopg.OperationalError as exc:  # includes PoolTimeout, QueryCanceled, deadlocks
            raise TransientError(f"database unavailable: {exc}") from exc
        except (pg_errors.DataError, pg_errors.CheckViolation, pg_errors.NotNullViolation) as exc:
            raise ValidationFailed(f"invalid data: {exc}") from exc
        except pg_errors.UniqueViolation as exc:
            raise Conflict(f"already exists: {exc}") from exc
        except pg_errors.ForeignKeyViolation as exc:
            raise NotFound(f"referenced row not found: {exc}") from exc

    def _user_id(self, conn: Conn, tenant_id: str, subject: str) -> uuid.UUID:
        """``users.id`` for (tenant, JWT subject), created on first sight; LRU-cached."""
        key = (tenant_id, subject)
        with self._users_lock:
            cached = self._users.get(key)
            if cached is not None:
                self._users.move_to_end(key)
                return cached
        # DO UPDATE (a no-op write) rather than DO NOTHING so RETURNING always yields the id,
        # even when a concurrent request inserted the row first. Runs once per user per process.
        row = conn.execute(
            "INSERT INTO users (tenant_id, subject) VALUES (%s, %s) "
            "ON CONFLICT (tenant_id, subject) DO UPDATE SET subject = EXCLUDED.subject RETURNING id",
            (tenant_id, subject),
        ).fetchone()
        assert row is not None
        user_id: uuid.UUID = row[0]
        with self._users_lock:
            self._users[key] = user_id
            while len(self._users) > self._user_cache_size:
                self._users.popitem(last=False)
        return user_id

    @staticmethod
    def _doc_row(conn: Conn, query: sql.Composable | str, params: Sequence[Any] | dict[str, Any]
                 ) -> Document | None:
        row = conn.cursor(row_factory=dict_row).execute(query, params).fetchone()  # type: ignore[arg-type]
        return Document.model_validate(row) if row is not None else None

    @staticmethod
    def _live(conn: Conn, tenant_id: str, document_id: uuid.UUID) -> Document | None:
        return PostgresDocumentStore._doc_row(
            conn, "SELECT * FROM documents WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL",
            (document_id, tenant_id))

    # documents ------------------------------------------------------------------------------------
    def claim_document(self, doc: NewDocument) -> tuple[Document, bool]:
        """Insert a ``pending`` row with ``doc.id`` unless (tenant, sha256) is live; see the port.

        The partial unique index arbitrates races: ``ON CONFLICT DO NOTHING`` waits for a
        concurrent inserter to commit, then the follow-up SELECT (a new snapshot under READ
        COMMITTED) sees its row. If that row was deleted in between, the claim is retried.
        """
        s3 = doc.s3
        with self.connection() as conn:
            uploaded_by = self._user_id(conn, doc.tenant_id, doc.uploaded_by) if doc.uploaded_by else None
            for _ in range(3):
                created = self._doc_row(
                    conn,
                    "INSERT INTO documents (id, tenant_id, filename, original_filename, file_size,"
                    " content_sha256, storage_type, storage_path, tags, metadata, uploaded_by,"
                    " s3_bucket, s3_key, s3_sequencer, s3_etag, processing_status)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending')"
                    " ON CONFLICT (tenant_id, content_sha256) WHERE deleted_at IS NULL DO NOTHING"
                    " RETURNING *",
                    (doc.id, doc.tenant_id, doc.filename, doc.original_filename, doc.file_size,
                     doc.content_sha256, doc.storage_type, doc.storage_path, list(doc.tags),
                     Jsonb(doc.metadata), uploaded_by, s3.bucket if s3 else None, s3.key if s3 else None,
                     s3.sequencer if s3 else None, s3.etag if s3 else None),
                )
                if created is not None:
                    return created, True
                existing = self._doc_row(
                    conn,
                    "SELECT * FROM documents WHERE tenant_id = %s AND content_sha256 = %s"
                    " AND deleted_at IS NULL",
                    (doc.tenant_id, doc.content_sha256),
                )
                if existing is not None:
                    return existing, False
        raise TransientError("document claim kept racing with deletes; retry")

    def get_document(self, tenant_id: str, document_id: uuid.UUID, *, touch: bool = False) -> Document:
        """The live document; ``NotFound`` if absent, soft-deleted or another tenant's.

        ``touch`` records ``accessed_at`` (at most once per ``ACCESS_GRANULARITY_S``).
        """
        with self.connection() as conn:
            if touch:
                self._touch(conn, tenant_id, [document_id])
            doc = self._live(conn, tenant_id, document_id)
        if doc is None:
            raise NotFound(f"document {document_id} not found")
        return doc

    def list_documents(self, tenant_id: str, *, status: DocumentStatus | None = None,
                       limit: int = 50, offset: int = 0) -> tuple[list[Document], int]:
        """A page of live documents, newest first, and the total matching count."""
        where: sql.Composable = sql.SQL("tenant_id = %(tenant)s AND deleted_at IS NULL")
        params: dict[str, Any] = {"tenant": tenant_id, "limit": max(0, limit), "offset": max(0, offset)}
        if status is not None:
            where = where + sql.SQL(" AND processing_status = %(status)s")
            params["status"] = str(status)
        with self.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(sql.SQL("SELECT * FROM documents WHERE {} ORDER BY uploaded_at DESC, id"
                                       " LIMIT %(limit)s OFFSET %(offset)s").format(where), params).fetchall()
            total_row = conn.execute(sql.SQL("SELECT count(*) FROM documents WHERE {}").format(where),
                                     params).fetchone()
        return [Document.model_validate(r) for r in rows], int(total_row[0]) if total_row else 0

    def try_start_processing(self, tenant_id: str, document_id: uuid.UUID, *, stale_after_s: int
                             ) -> Document | None:
        """Compare-and-set to ``processing`` (see the port); ``NotFound`` if the document is gone.

        A ``completed`` document is not restarted (``None``): use ``reset_for_reprocess``.
        """
        with self.connection() as conn:
            doc = self._doc_row(
                conn,
                "UPDATE documents SET processing_status = 'processing', processed = false,"
                " processing_started_at = now(), processing_completed_at = NULL, updated_at = now(),"
                " error_code = NULL, error_message = NULL"
                " WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
                " AND (processing_status IN ('pending', 'failed')"
                "      OR (processing_status = 'processing'"
                "          AND updated_at < now() - make_interval(secs => %s)))"
                " RETURNING *",
                (document_id, tenant_id, stale_after_s),
            )
            if doc is None and self._live(conn, tenant_id, document_id) is None:
                raise NotFound(f"document {document_id} not found")
        return doc

    def reset_for_reprocess(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        """``completed``/``failed`` → ``pending``; ``Conflict`` if pending or processing.

        The old chunks stay until ``complete_document`` replaces them, but are hidden from
        search meanwhile (only ``completed`` documents are searchable).
        """
        with self.connection() as conn:
            doc = self._doc_row(
                conn,
                "UPDATE documents SET processing_status = 'pending', processed = false, updated_at = now(),"
                " error_code = NULL, error_message = NULL"
                " WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
                " AND processing_status IN ('completed', 'indexing', 'failed') RETURNING *",
                (document_id, tenant_id),
            )
            if doc is None:
                current = self._live(conn, tenant_id, document_id)
                if current is None:
                    raise NotFound(f"document {document_id} not found")
                raise Conflict(f"document {document_id} is {current.processing_status.value}",
                               details={"status": current.processing_status.value})
        return doc

    def mark_failed(self, tenant_id: str, document_id: uuid.UUID, *, code: str, message: str) -> Document:
        """Status ``failed`` with the error recorded; ``NotFound`` if the document is gone. A
        failed new version of an S3 key replaces the key's older document too (the bytes it
        was built from are gone from the key)."""
        with self.connection() as conn, conn.transaction():
            binding = _lock_s3_key(conn, tenant_id, document_id)
            doc = self._doc_row(
                conn,
                "UPDATE documents SET processing_status = 'failed', processed = false, error_code = %s,"
                " error_message = %s, processing_completed_at = now(), updated_at = now()"
                " WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL RETURNING *",
                (code, message, document_id, tenant_id),
            )
            if doc is not None and binding is not None:
                doc = _retire_superseded(conn, tenant_id, document_id, *binding)
        if doc is None:
            raise NotFound(f"document {document_id} not found")
        return doc

    def complete_document(self, tenant_id: str, document_id: uuid.UUID, *, chunks: Sequence[ChunkDraft],
                          embeddings: Vector | None, info: dict[str, Any], indexing: bool = False) -> Document:
        """Replace the chunks and mark ``completed`` in one transaction (see the port).

        ``embeddings``: ``(len(chunks), 384)`` float32 or ``None``. ``info`` keys (all
        optional): ``page_count``, ``word_count``, ``empty_page_count`` (ints), ``title``,
        ``author``, ``language`` (str, cut to the column widths), ``created_date`` (date),
        ``embedder_variant`` (which embedder made ``embeddings``).
        Raises ``NotFound`` if the document was deleted meanwhile (the delete wins),
        ``ValidationFailed`` for bad shapes or values (nothing is written).
        """
        if embeddings is not None and (embeddings.ndim != 2 or embeddings.shape[0] != len(chunks)):
            raise ValidationFailed(f"embeddings shape {embeddings.shape} does not match {len(chunks)} chunks")
        if len({c.chunk_index for c in chunks}) != len(chunks):
            raise ValidationFailed("chunk_index values must be unique within a document")
        with self.connection() as conn, conn.transaction():
            binding = _lock_s3_key(conn, tenant_id, document_id)
            # Lock the row: a concurrent soft delete either committed before (we see it and
            # stop) or waits for us and then hides the freshly written chunks.
            locked = conn.execute(
                "SELECT 1 FROM documents WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL FOR UPDATE",
                (document_id, tenant_id),
            ).fetchone()
            if locked is None:
                raise NotFound(f"document {document_id} not found")
            old_terms = _terms_of(conn, tenant_id, document_id)
            removed = conn.execute(
                "DELETE FROM document_chunks WHERE document_id = %s AND tenant_id = %s RETURNING term_count",
                (document_id, tenant_id)).fetchall()
            # binary COPY: the fastest load path (measured 150k rows/s vs 84k for executemany)
            with conn.cursor().copy(_CHUNK_COPY) as copy:
                copy.set_types(_CHUNK_COPY_TYPES)
                for i, ch in enumerate(chunks):
                    copy.write_row((
                        # NUL is the one character PostgreSQL text cannot store (PDF text has some)
                        uuid.uuid4(), document_id, tenant_id, ch.content.replace("\x00", ""), ch.chunk_index,
                        ch.page_number,
                        ch.page_end, ch.char_start, ch.char_end, len(ch.content), ch.token_count, ch.section,
                        None if embeddings is None else PgVector(embeddings[i]),
                    ))
            terms = _index_terms(conn, tenant_id, document_id, removed=old_terms)
            # last, so the tenant's counter row is locked only for the commit (concurrent
            # ingests of one tenant queue on it); lock order is always document → counter
            _bump_usage(conn, tenant_id, len(chunks) - len(removed),
                        terms - sum(r[0] or 0 for r in removed))
            doc = self._doc_row(
                conn,
                "UPDATE documents SET processing_status = %(status)s, processed = true,"
                " processing_completed_at = now(), updated_at = now(),"
                " error_code = NULL, error_message = NULL,"
                " page_count = %(page_count)s, word_count = %(word_count)s,"
                " empty_page_count = %(empty_page_count)s, chunk_count = %(chunk_count)s,"
                " title = %(title)s, author = %(author)s, language = %(language)s,"
                " created_date = %(created_date)s, embedder_variant = %(embedder_variant)s"
                " WHERE id = %(id)s AND tenant_id = %(tenant)s RETURNING *",
                {
                    "id": document_id, "tenant": tenant_id, "chunk_count": len(chunks), "status": _done(indexing),
                    "embedder_variant": info.get("embedder_variant"),
                    "page_count": info.get("page_count"), "word_count": info.get("word_count"),
                    "empty_page_count": info.get("empty_page_count"),
                    "title": _cut(info.get("title"), 500), "author": _cut(info.get("author"), 255),
                    "language": _cut(info.get("language"), 10),
                    "created_date": _date(info.get("created_date")),
                },
            )
            assert doc is not None  # the row is locked by this transaction
            if binding is not None:
                doc = _retire_superseded(conn, tenant_id, document_id, *binding)
        return doc

    def soft_delete(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        """Set ``deleted_at``; the chunks stop matching every search in the same instant."""
        with self.connection() as conn:
            doc = self._doc_row(
                conn,
                "UPDATE documents SET deleted_at = now(), updated_at = now()"
                " WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL RETURNING *",
                (document_id, tenant_id),
            )
        if doc is None:
            raise NotFound(f"document {document_id} not found")
        return doc

    def purge_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Delete the row (live or soft-deleted) and, by cascade, its chunks and vectors.

        Idempotent: purging a missing id (or another tenant's) does nothing, so a retried
        cleanup never fails.
        """
        with self.connection() as conn, conn.transaction():
            # the counters move in the same transaction as the cascade (the `rows` CTE reads
            # the snapshot from before the delete)
            _move_df(conn, tenant_id, None, _terms_of(conn, tenant_id, document_id), {"tenant": tenant_id})
            conn.execute(
                "WITH rows AS (SELECT count(*) AS n, COALESCE(sum(term_count), 0) AS terms"
                "  FROM document_chunks WHERE document_id = %(id)s AND tenant_id = %(tenant)s),"
                " gone AS (DELETE FROM documents WHERE id = %(id)s AND tenant_id = %(tenant)s RETURNING tenant_id)"
                " UPDATE tenant_usage u SET chunk_rows = GREATEST(0, u.chunk_rows - rows.n),"
                " term_occurrences = GREATEST(0, u.term_occurrences - rows.terms),"
                " updated_at = now() FROM gone, rows WHERE u.tenant_id = gone.tenant_id",
                {"id": document_id, "tenant": tenant_id},
            )

    # chunks ---------------------------------------------------------------------------------------
    def fulltext_search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Up to ``k`` live chunks ranked by Okapi BM25 over the query's English lexemes, best first.

        ``score = Σ idf(t) · tf·(k1+1) / (tf + k1·(1 - b + b·|d|/avgdl))`` with
        ``idf(t) = ln(1 + (N - df + 0.5)/(df + 0.5))``, k1 = 1.2, b = 0.75 (Robertson & Zaragoza
        2009). Postings come from ``chunk_terms`` (migration 0002); df from ``tenant_terms``, N
        and avgdl from ``tenant_usage`` (migration 0005, kept at write time); df counts the
        tenant's postings, deleted-but-unpurged chunks included (as Lucene counts deleted
        documents until a merge). Filters and liveness apply before the LIMIT. Ties break on
        chunk id. An empty or stop-word-only query returns ``[]``. The SQL (and how it avoids
        summing every posting) is :func:`querio.adapters.postgres.search.text_leg`.
        """
        from querio.adapters.postgres.search import fulltext_refs  # it builds on this module

        with self.connection() as conn:
            return fulltext_refs(conn, tenant_id, query, k, filters)

    def fetch_chunks(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredChunk]:
        """Live chunks by id; other tenants' or deleted documents' ids are silently absent."""
        if not chunk_ids:
            return {}
        stmt = sql.SQL(
            "SELECT c.id, c.document_id, c.chunk_index, c.content, c.page_number,"
            " COALESCE(c.page_end, c.page_number) AS page_end, d.filename, d.title"
            " FROM {live} WHERE {live_where} AND c.id = ANY(%(ids)s::uuid[])"
        ).format(live=LIVE_CHUNKS, live_where=LIVE_WHERE)
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                stmt, {"tenant": tenant_id, "ids": list(chunk_ids)}).fetchall()
        return {r["id"]: StoredChunk(**r) for r in rows}

    def corpus_version(self, tenant_id: str) -> str:
        """``"{rows}-{max(updated_at)}"`` over ALL the tenant's document rows: every change to the
        corpus updates ``updated_at`` (soft delete included) or the row count (purge).
        ``accessed_at`` is separate, so reads do not change the version."""
        with self.connection() as conn:
            row = conn.execute("SELECT count(*), COALESCE(max(updated_at), 'epoch'::timestamptz)"
                               " FROM documents WHERE tenant_id = %s", (tenant_id,)).fetchone()
        assert row is not None
        return f"{row[0]}-{row[1].timestamp():.6f}"

    def touch_documents(self, tenant_id: str, document_ids: Sequence[uuid.UUID]) -> None:
        """Best effort ``accessed_at`` update: errors are logged, never raised."""
        if not document_ids:
            return
        try:
            with self.connection(timeout=2.0) as conn:
                self._touch(conn, tenant_id, document_ids)
        except Exception:
            log.warning("touch_documents failed", exc_info=True)

    @staticmethod
    def _touch(conn: Conn, tenant_id: str, document_ids: Sequence[uuid.UUID]) -> None:
        # SKIP LOCKED: a document being ingested is row-locked for the whole chunk write;
        # a reader must not wait for that just to record an access.
        conn.execute(
            "UPDATE documents SET accessed_at = now() WHERE id IN ("
            " SELECT id FROM documents WHERE id = ANY(%s::uuid[]) AND tenant_id = %s AND deleted_at IS NULL"
            " AND (accessed_at IS NULL OR accessed_at < now() - make_interval(secs => %s))"
            " FOR UPDATE SKIP LOCKED)",
            (list(document_ids), tenant_id, ACCESS_GRANULARITY_S),
        )

    # chat -----------------------------------------------------------------------------------------
    _SESSION_COLS = "id, title, created_at, updated_at, message_count"

    def create_chat_session(self, tenant_id: str, user_id: str, title: str | None) -> ChatSession:
        with self.connection() as conn:
            owner = self._user_id(conn, tenant_id, user_id)
            row = conn.cursor(row_factory=dict_row).execute(
                f"INSERT INTO chat_sessions (tenant_id, user_id, title) VALUES (%s, %s, %s)"
                f" RETURNING {self._SESSION_COLS}",
                (tenant_id, owner, _cut(title, 255)),
            ).fetchone()
        return ChatSession.model_validate(row)

    def get_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> ChatSession:
        """``NotFound`` if absent or another tenant's."""
        with self.connection() as conn:
            row = conn.cursor(row_factory=dict_row).execute(
                f"SELECT {self._SESSION_COLS} FROM chat_sessions WHERE id = %s AND tenant_id = %s",
                (session_id, tenant_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"chat session {session_id} not found")
        return ChatSession.model_validate(row)

    def list_chat_sessions(self, tenant_id: str, *, limit: int = 50, offset: int = 0) -> list[ChatSession]:
        """The tenant's sessions, most recently active first."""
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                f"SELECT {self._SESSION_COLS} FROM chat_sessions WHERE tenant_id = %s"
                " ORDER BY updated_at DESC, id LIMIT %s OFFSET %s",
                (tenant_id, max(0, limit), max(0, offset)),
            ).fetchall()
        return [ChatSession.model_validate(r) for r in rows]

    def add_chat_message(self, tenant_id: str, session_id: uuid.UUID, role: ChatRole, content: str, *,
                         source_chunks: Sequence[uuid.UUID] = (), metadata: dict[str, Any] | None = None
                         ) -> ChatMessage:
        """Append a message and bump the session's counters atomically; ``NotFound`` for a
        session that is absent or another tenant's."""
        with self.connection() as conn, conn.transaction():
            # the UPDATE row-locks the session, so concurrent appends keep message_count exact
            bumped = conn.execute(
                "UPDATE chat_sessions SET message_count = message_count + 1, updated_at = now()"
                " WHERE id = %s AND tenant_id = %s RETURNING id",
                (session_id, tenant_id),
            ).fetchone()
            if bumped is None:
                raise NotFound(f"chat session {session_id} not found")
            row = conn.cursor(row_factory=dict_row).execute(
                "INSERT INTO chat_messages (session_id, role, content, source_chunks, metadata, created_at)"
                " VALUES (%s, %s, %s, %s::uuid[], %s, clock_timestamp())"
                " RETURNING id, session_id, role, content, source_chunks, metadata, created_at",
                (session_id, str(role), content, list(source_chunks), Jsonb(metadata or {})),
            ).fetchone()
        return ChatMessage.model_validate(row)

    def chat_history(self, tenant_id: str, session_id: uuid.UUID, *, limit: int = 100) -> list[ChatMessage]:
        """The last ``limit`` messages, oldest first; ``NotFound`` for another tenant's session."""
        with self.connection() as conn:
            owned = conn.execute("SELECT 1 FROM chat_sessions WHERE id = %s AND tenant_id = %s",
                                 (session_id, tenant_id)).fetchone()
            if owned is None:
                raise NotFound(f"chat session {session_id} not found")
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM (SELECT id, session_id, role, content, source_chunks, metadata, created_at"
                " FROM chat_messages WHERE session_id = %s ORDER BY created_at DESC, id DESC LIMIT %s) m"
                " ORDER BY created_at, id",
                (session_id, max(0, limit)),
            ).fetchall()
        return [ChatMessage.model_validate(r) for r in rows]

    def delete_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> None:
        """Delete the session and (by cascade) its messages; ``NotFound`` if not the tenant's."""
        with self.connection() as conn:
            cur = conn.execute("DELETE FROM chat_sessions WHERE id = %s AND tenant_id = %s",
                               (session_id, tenant_id))
            if cur.rowcount == 0:
                raise NotFound(f"chat session {session_id} not found")

    # analytics ------------------------------------------------------------------------------------
    def record_query(self, tenant_id: str, user_id: str, query: str, *, response_time_ms: int,
                     chunks_retrieved: int, success: bool) -> None:
        with self.connection() as conn:
            uid = self._user_id(conn, tenant_id, user_id)
            conn.execute(
                "INSERT INTO query_analytics (tenant_id, user_id, query, response_time_ms, chunks_retrieved,"
                " success) VALUES (%s, %s, %s, %s, %s, %s)",
                (tenant_id, uid, query, response_time_ms, chunks_retrieved, success),
            )

    def record_queries(self, records: Sequence[QueryRecord]) -> None:
        """Many ``query_analytics`` rows in one INSERT (users resolved through the cache)."""
        if not records:
            return
        with self.connection() as conn:
            users = [self._user_id(conn, r.tenant_id, r.user_id) for r in records]
            conn.execute(
                "INSERT INTO query_analytics (tenant_id, user_id, query, response_time_ms, chunks_retrieved,"
                " success, created_at) SELECT * FROM unnest(%s::text[], %s::uuid[], %s::text[], %s::int[],"
                " %s::int[], %s::bool[], %s::timestamptz[])",
                ([r.tenant_id for r in records], users, [r.query.replace("\x00", " ") for r in records],
                 [r.response_time_ms for r in records], [r.chunks_retrieved for r in records],
                 [r.success for r in records], [r.created_at for r in records]))

    def recent_queries(self, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` recent distinct successful (tenant, query) pairs, newest first."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT tenant_id, query FROM (SELECT DISTINCT ON (tenant_id, query) tenant_id, query, created_at"
                " FROM query_analytics WHERE success AND length(query) > 0"
                " ORDER BY tenant_id, query, created_at DESC) q"
                " ORDER BY created_at DESC LIMIT %s", (limit,)).fetchall()
        return [(str(t), str(q)) for t, q in rows]

    def stats(self, tenant_id: str) -> TenantStats:
        """Counts over the tenant's live documents (chunks from ``documents.chunk_count``)
        and its recorded queries. ``popular_queries``/``daily_active_users`` are left for
        the cache layer."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT processing_status, count(*), COALESCE(sum(chunk_count), 0),"
                " COALESCE(sum(page_count), 0), COALESCE(sum(file_size), 0)"
                " FROM documents WHERE tenant_id = %s AND deleted_at IS NULL GROUP BY processing_status",
                (tenant_id,),
            ).fetchall()
            q = conn.execute("SELECT count(*) FROM query_analytics WHERE tenant_id = %s",
                             (tenant_id,)).fetchone()
        by_status = {str(s): int(n) for s, n, *_ in rows}
        return TenantStats(
            documents=sum(by_status.values()),
            documents_by_status=by_status,
            chunks=sum(int(r[2]) for r in rows),
            pages=sum(int(r[3]) for r in rows),
            bytes=sum(int(r[4]) for r in rows),
            queries=int(q[0]) if q else 0,
        )

    # S3 uploads and archive (issue 3) -----------------------------------------------------------
    def find_by_s3_key(self, tenant_id: str, bucket: str, key: str) -> Document | None:
        """The live document the key holds now (of the highest sequencer), if any."""
        with self.connection() as conn:
            return self._doc_row(
                conn, "SELECT * FROM documents WHERE tenant_id = %s AND s3_key = %s AND s3_bucket = %s"
                      " AND deleted_at IS NULL ORDER BY lpad(COALESCE(s3_sequencer, ''), 64, '0') DESC,"
                      " uploaded_at DESC LIMIT 1", (tenant_id, key, bucket))

    def retired_by_key(self, tenant_id: str, bucket: str, key: str) -> list[Document]:
        """Soft-deleted documents that the key once held (superseded by an overwrite)."""
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM documents WHERE tenant_id = %s AND s3_key = %s AND s3_bucket = %s"
                " AND deleted_at IS NOT NULL ORDER BY id LIMIT 100", (tenant_id, key, bucket)).fetchall()
        return [Document.model_validate(r) for r in rows]

    def set_s3_location(self, tenant_id: str, document_id: uuid.UUID, bucket: str, key: str, *,
                        sequencer: str | None = None, etag: str | None = None) -> None:
        """Record the S3 object (and the event's version of it) a document lives in. A document
        bound to one key is never re-bound to another; the sequencer only moves forward."""
        with self.connection() as conn:
            conn.execute(
                "UPDATE documents SET s3_bucket = %(b)s, s3_key = %(k)s, updated_at = now(),"
                " s3_etag = COALESCE(%(etag)s, s3_etag), s3_sequencer = CASE WHEN s3_sequencer IS NULL"
                "  OR lpad(COALESCE(%(seq)s, ''), 64, '0') > lpad(s3_sequencer, 64, '0') THEN %(seq)s"
                "  ELSE s3_sequencer END"
                " WHERE id = %(id)s AND tenant_id = %(t)s"
                " AND (s3_key IS NULL OR (s3_key = %(k)s AND s3_bucket = %(b)s))",
                {"b": bucket, "k": key, "etag": etag, "seq": sequencer, "id": document_id, "t": tenant_id})

    def record_s3_event(self, tenant_id: str, bucket: str, key: str, *, sequencer: str, event_name: str,
                        etag: str | None, version_id: str | None) -> bool:
        """Record the key's latest S3 event; ``False`` (nothing written) when a later event of
        the key is already recorded: this one is stale. An equal sequencer (the same event,
        redelivered) is not stale, so a retried event is applied again (idempotently)."""
        with self.connection() as conn:
            row = conn.execute(
                "INSERT INTO s3_objects (tenant_id, bucket, key, sequencer, event_name, etag, version_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, bucket, key) DO UPDATE SET"
                " sequencer = EXCLUDED.sequencer, event_name = EXCLUDED.event_name, etag = EXCLUDED.etag,"
                " version_id = EXCLUDED.version_id, updated_at = now()"
                " WHERE lpad(EXCLUDED.sequencer, 64, '0') >= lpad(s3_objects.sequencer, 64, '0') RETURNING 1",
                (tenant_id, bucket, key, sequencer.upper(), event_name[:100], etag, version_id)).fetchone()
        return row is not None

    def blob_shared(self, tenant_id: str, storage_path: str, document_id: uuid.UUID) -> bool:
        """Whether a live document other than ``document_id`` keeps its bytes at ``storage_path``
        (an overwritten key now holds its successor's bytes): then the blob must stay."""
        with self.connection() as conn:
            return conn.execute(
                "SELECT 1 FROM documents WHERE tenant_id = %s AND storage_path = %s AND id <> %s"
                " AND deleted_at IS NULL LIMIT 1", (tenant_id, storage_path, document_id)).fetchone() is not None

    def finish_indexing(self, tenant_id: str, document_id: uuid.UUID) -> Document | None:
        """``indexing`` → ``completed`` once the serving vector store holds the vectors."""
        with self.connection() as conn:
            return self._doc_row(
                conn, "UPDATE documents SET processing_status = 'completed', updated_at = now()"
                      " WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
                      " AND processing_status = 'indexing' RETURNING *", (document_id, tenant_id))

    def indexing_candidates(self, *, after_id: uuid.UUID | None = None, limit: int = 50) -> list[Document]:
        """Live ``indexing`` documents of every tenant, keyset-paged by id (the re-sync sweep)."""
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM documents WHERE deleted_at IS NULL AND processing_status = 'indexing'"
                " AND (%s::uuid IS NULL OR id > %s::uuid) ORDER BY id LIMIT %s",
                (after_id, after_id, max(0, limit))).fetchall()
        return [Document.model_validate(r) for r in rows]

    def archive_candidates(self, idle_before: dt.datetime, *, after_id: uuid.UUID | None = None,
                           limit: int = 50) -> list[Document]:
        """Live ``completed`` documents of ANY tenant still in STANDARD whose last access (or
        upload, if never accessed) is before ``idle_before``; keyset-paged by id. Used only by
        the archive job, which acts per returned row's own tenant."""
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM documents WHERE deleted_at IS NULL AND storage_class = 'STANDARD'"
                " AND processing_status = 'completed' AND COALESCE(accessed_at, uploaded_at) < %s"
                " AND (%s::uuid IS NULL OR id > %s::uuid) ORDER BY id LIMIT %s",
                (_utc(idle_before), after_id, after_id, max(0, limit))).fetchall()
        return [Document.model_validate(r) for r in rows]

    def mark_archived(self, tenant_id: str, document_id: uuid.UUID, storage_class: str) -> Document | None:
        """Record the archive class and time; ``None`` if the document went away meanwhile."""
        with self.connection() as conn:
            return self._doc_row(
                conn, "UPDATE documents SET storage_class = %s, archived_at = COALESCE(archived_at, now()),"
                      " updated_at = now() WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL RETURNING *",
                (storage_class, document_id, tenant_id))

    def purge_candidates(self, deleted_before: dt.datetime, *, after_id: uuid.UUID | None = None,
                         limit: int = 50) -> list[Document]:
        """Soft-deleted documents of ANY tenant deleted before ``deleted_before``; keyset-paged."""
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM documents WHERE deleted_at IS NOT NULL AND deleted_at < %s"
                " AND (%s::uuid IS NULL OR id > %s::uuid) ORDER BY id LIMIT %s",
                (_utc(deleted_before), after_id, after_id, max(0, limit))).fetchall()
        return [Document.model_validate(r) for r in rows]

    # page-range ingest parts of large PDFs (issue 3; see querio.ingest.parts) -------------------
    def start_parts(self, tenant_id: str, document_id: uuid.UUID, ranges: Sequence[tuple[int, int]]) -> None:
        """(Re)plan the document's parts: drop earlier parts and staged chunks, insert ``pending`` rows."""
        with self.connection() as conn, conn.transaction():
            if conn.execute("SELECT 1 FROM documents WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
                            " FOR UPDATE", (document_id, tenant_id)).fetchone() is None:
                raise NotFound(f"document {document_id} not found")
            _move_df(conn, tenant_id, None, _terms_of(conn, tenant_id, document_id), {"tenant": tenant_id})
            removed = conn.execute(
                "DELETE FROM document_chunks WHERE document_id = %s AND tenant_id = %s RETURNING term_count",
                (document_id, tenant_id)).fetchall()
            conn.execute(_BLOCKS_DELETE, _doc_params(tenant_id, document_id, None, None))
            conn.execute("DELETE FROM ingest_parts WHERE document_id = %s AND tenant_id = %s",
                         (document_id, tenant_id))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO ingest_parts (document_id, tenant_id, part_no, page_from, page_to)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(document_id, tenant_id, i, a, b) for i, (a, b) in enumerate(ranges)])
            _bump_usage(conn, tenant_id, -len(removed), -sum(r[0] or 0 for r in removed))

    def claim_part(self, tenant_id: str, document_id: uuid.UUID, part_no: int, *, stale_after_s: int
                   ) -> dict[str, Any] | None:
        """Compare-and-set a part to ``processing`` (from pending, failed, or a stale
        processing); ``None`` when it is done, held by a live worker, or its document is gone
        or no longer processing."""
        with self.connection() as conn:
            row: dict[str, Any] | None = conn.cursor(row_factory=dict_row).execute(
                "UPDATE ingest_parts p SET status = 'processing', attempts = p.attempts + 1, started_at = now(),"
                " updated_at = now(), error_message = NULL FROM documents d"
                " WHERE p.document_id = %s AND p.tenant_id = %s AND p.part_no = %s"
                " AND d.id = p.document_id AND d.tenant_id = p.tenant_id AND d.deleted_at IS NULL"
                " AND d.processing_status = 'processing'"
                " AND (p.status IN ('pending', 'failed')"
                "      OR (p.status = 'processing' AND p.updated_at < now() - make_interval(secs => %s)))"
                " RETURNING p.*",
                (document_id, tenant_id, part_no, stale_after_s)).fetchone()
        return row

    def fail_part(self, tenant_id: str, document_id: uuid.UUID, part_no: int, message: str) -> None:
        with self.connection() as conn:
            conn.execute("UPDATE ingest_parts SET status = 'failed', error_message = %s, updated_at = now()"
                         " WHERE document_id = %s AND tenant_id = %s AND part_no = %s AND status <> 'done'",
                         (message[:1000], document_id, tenant_id, part_no))

    def store_part(self, tenant_id: str, document_id: uuid.UUID, part_no: int, *, chunks: Sequence[ChunkDraft],
                   embeddings: Vector | None, stats: dict[str, Any], index_stride: int,
                   indexing: bool = False) -> Document | None:
        """Stage one part's chunks and mark it done, in ONE transaction under the document's
        row lock; if it was the last part, assemble: the document becomes ``completed`` (its
        chunks become searchable) in the same transaction, and is returned. Otherwise ``None``.

        ``chunks`` carry their final ``chunk_index`` in ``[part_no * index_stride, +index_stride)``;
        re-storing a part replaces exactly that range. ``stats``: ``word_count``,
        ``empty_pages`` and, from part 0, ``info`` (title, author, language, created_date)."""
        if embeddings is not None and (embeddings.ndim != 2 or embeddings.shape[0] != len(chunks)):
            raise ValidationFailed(f"embeddings shape {embeddings.shape} does not match {len(chunks)} chunks")
        lo, hi = part_no * index_stride, (part_no + 1) * index_stride
        if any(not lo <= c.chunk_index < hi for c in chunks):
            raise ValidationFailed(f"chunk_index outside part {part_no}'s range")
        with self.connection() as conn, conn.transaction():
            binding = _lock_s3_key(conn, tenant_id, document_id)
            if conn.execute("SELECT 1 FROM documents WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
                            " AND processing_status = 'processing' FOR UPDATE",
                            (document_id, tenant_id)).fetchone() is None:
                raise NotFound(f"document {document_id} not found or not processing")
            part = conn.execute("SELECT status FROM ingest_parts WHERE document_id = %s AND tenant_id = %s"
                                " AND part_no = %s FOR UPDATE", (document_id, tenant_id, part_no)).fetchone()
            if part is None or part[0] == "done":
                return None
            old_terms = _terms_of(conn, tenant_id, document_id, lo, hi)
            removed = conn.execute(
                "DELETE FROM document_chunks WHERE document_id = %s AND tenant_id = %s"
                " AND chunk_index >= %s AND chunk_index < %s RETURNING term_count",
                (document_id, tenant_id, lo, hi)).fetchall()
            with conn.cursor().copy(_CHUNK_COPY) as copy:
                copy.set_types(_CHUNK_COPY_TYPES)
                for i, ch in enumerate(chunks):
                    copy.write_row((
                        uuid.uuid4(), document_id, tenant_id, ch.content.replace("\x00", ""), ch.chunk_index,
                        ch.page_number, ch.page_end, ch.char_start, ch.char_end, len(ch.content), ch.token_count,
                        ch.section, None if embeddings is None else PgVector(embeddings[i]),
                    ))
            terms = _index_terms(conn, tenant_id, document_id, removed=old_terms, lo=lo, hi=hi)
            conn.execute(
                "UPDATE ingest_parts SET status = 'done', chunk_count = %s, word_count = %s, empty_pages = %s,"
                " info = %s, embedder_variant = %s, finished_at = now(), updated_at = now()"
                " WHERE document_id = %s AND tenant_id = %s AND part_no = %s",
                (len(chunks), int(stats.get("word_count") or 0), int(stats.get("empty_pages") or 0),
                 Jsonb(stats.get("info") or {}), stats.get("embedder_variant"), document_id, tenant_id, part_no))
            # progress keeps the document from looking like a crashed worker's (stale) row
            conn.execute("UPDATE documents SET updated_at = now() WHERE id = %s AND tenant_id = %s",
                         (document_id, tenant_id))
            _bump_usage(conn, tenant_id, len(chunks) - len(removed), terms - sum(r[0] or 0 for r in removed))
            totals = conn.cursor(row_factory=dict_row).execute(
                "SELECT count(*) FILTER (WHERE status <> 'done') AS open, max(page_to) AS pages,"
                " sum(chunk_count) AS chunks, sum(word_count) AS words, sum(empty_pages) AS empty,"
                " (SELECT info FROM ingest_parts WHERE document_id = %(id)s AND part_no = 0) AS info,"
                # parts embedded by different variants (a deploy mid-document): 'mixed' matches no embedder
                " CASE WHEN count(DISTINCT embedder_variant) = 1 AND count(embedder_variant) = count(*)"
                " THEN min(embedder_variant) ELSE 'mixed' END AS variant"
                " FROM ingest_parts WHERE document_id = %(id)s AND tenant_id = %(tenant)s",
                {"id": document_id, "tenant": tenant_id}).fetchone()
            if totals is None or totals["open"]:
                return None
            info = totals["info"] or {}
            doc = self._doc_row(
                conn,
                "UPDATE documents SET processing_status = %(status)s, processed = true,"
                " processing_completed_at = now(), updated_at = now(), error_code = NULL, error_message = NULL,"
                " page_count = %(pages)s, word_count = %(words)s, empty_page_count = %(empty)s,"
                " chunk_count = %(chunks)s, title = %(title)s, author = %(author)s, language = %(language)s,"
                " created_date = %(created)s, embedder_variant = %(variant)s"
                " WHERE id = %(id)s AND tenant_id = %(tenant)s RETURNING *",
                {"id": document_id, "tenant": tenant_id, "pages": totals["pages"], "words": totals["words"],
                 "variant": totals["variant"],
                 "empty": totals["empty"], "chunks": totals["chunks"], "title": _cut(info.get("title"), 500),
                 "author": _cut(info.get("author"), 255), "language": _cut(info.get("language"), 10),
                 "created": _date(info.get("created_date")), "status": _done(indexing)})
            if doc is not None and binding is not None:
                doc = _retire_superseded(conn, tenant_id, document_id, *binding)
            return doc

    # embedder variants (issue 13) -----------------------------------------------------------------
    def embedder_variants(self, tenant_id: str, expected: str) -> dict[str, int]:
        """``{}`` when every searchable document of the tenant was embedded by ``expected`` (two
        index probes: min and max), else the tenant's searchable documents per variant."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT min(embedder_variant), max(embedder_variant), bool_or(embedder_variant IS NULL)"
                " FROM documents WHERE tenant_id = %s AND deleted_at IS NULL AND processing_status = 'completed'",
                (tenant_id,)).fetchone()
            if row is None or (row[0] is None and not row[2]) or (row[0] == row[1] == expected and not row[2]):
                return {}
            rows = conn.execute(
                "SELECT COALESCE(embedder_variant, 'unknown'), count(*) FROM documents WHERE tenant_id = %s"
                " AND deleted_at IS NULL AND processing_status = 'completed' GROUP BY 1 ORDER BY 1",
                (tenant_id,)).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def reembed_candidates(self, variant: str, *, tenant_id: str | None = None, after_id: uuid.UUID | None = None,
                           limit: int = 100) -> list[Document]:
        """Searchable documents not embedded by ``variant`` (of one tenant or all), in id order
        after ``after_id`` (keyset pages)."""
        with self.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM documents WHERE deleted_at IS NULL AND processing_status = 'completed'"
                " AND embedder_variant IS DISTINCT FROM %(variant)s"
                " AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
                " AND (%(after)s::uuid IS NULL OR id > %(after)s) ORDER BY id LIMIT %(limit)s",
                {"variant": variant, "tenant": tenant_id, "after": after_id, "limit": limit}).fetchall()
        return [Document.model_validate(r) for r in rows]

    def chunk_texts(self, tenant_id: str, document_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str | None]]:
        """``(chunk id, content, section)`` of a document, in chunk order."""
        with self.connection() as conn:
            rows = conn.execute("SELECT id, content, section FROM document_chunks"
                                " WHERE tenant_id = %s AND document_id = %s ORDER BY chunk_index",
                                (tenant_id, document_id)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def replace_embeddings(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
                           embeddings: Vector | None, variant: str) -> bool:
        """Rewrite a completed document's chunk vectors (``None``: they live in an external index,
        already written) and record ``variant``, in one transaction. ``False`` (nothing written)
        if the document was deleted, is being reprocessed or its chunks changed meanwhile."""
        if embeddings is not None and (embeddings.ndim != 2 or embeddings.shape[0] != len(chunk_ids)):
            raise ValidationFailed(f"embeddings shape {embeddings.shape} does not match {len(chunk_ids)} chunks")
        with self.connection() as conn, conn.transaction():
            if conn.execute("SELECT 1 FROM documents WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
                            " AND processing_status = 'completed' FOR UPDATE",
                            (document_id, tenant_id)).fetchone() is None:
                return False
            current = conn.execute("SELECT id FROM document_chunks WHERE tenant_id = %s AND document_id = %s",
                                   (tenant_id, document_id)).fetchall()
            if {r[0] for r in current} != set(chunk_ids) or len(current) != len(chunk_ids):
                return False
            if embeddings is not None:
                with conn.cursor() as cur:
                    cur.executemany("UPDATE document_chunks SET embedding = %s WHERE id = %s AND tenant_id = %s",
                                    [(PgVector(embeddings[i]), cid, tenant_id) for i, cid in enumerate(chunk_ids)])
            conn.execute("UPDATE documents SET embedder_variant = %s, updated_at = now()"
                         " WHERE id = %s AND tenant_id = %s", (variant, document_id, tenant_id))
        return True

    # bulk loads (benchmarks, imports) ------------------------------------------------------------
    def bulk_load(self, tenant_id: str, documents: Sequence[tuple[uuid.UUID, str, Sequence[str]]],
                  chunks: Sequence[tuple[uuid.UUID, str, int, int]], embeddings: Vector | None,
                  embedder_variant: str | None = None) -> None:
        """Load completed documents and their chunks straight into the schema, the way ingest
        would leave them, in one transaction: ``documents`` as ``(id, filename, tags)``,
        ``chunks`` as ``(document_id, content, chunk_index, page)`` row-aligned with
        ``embeddings``; both with binary COPY. Postings, document frequencies and the tenant's
        counters are then written set-wise with the ingest path's own statements.
        ``embedder_variant``: what made ``embeddings`` (``Embedder.variant``), recorded per document
        so that vector search accepts the corpus."""
        if embeddings is not None and embeddings.shape[0] != len(chunks):
            raise ValidationFailed(f"embeddings shape {embeddings.shape} does not match {len(chunks)} chunks")
        with self.connection() as conn, conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")  # a bulk load may take minutes
            with conn.cursor().copy(
                    "COPY documents (id, tenant_id, filename, original_filename, file_size, content_sha256,"
                    " storage_type, processing_status, processed, chunk_count, tags, embedder_variant)"
                    " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "text", "text", "text", "int8", "text", "text", "text", "bool", "int4",
                                "text[]", "text"])
                counts: dict[uuid.UUID, int] = {}
                for doc_id, _, _, _ in chunks:
                    counts[doc_id] = counts.get(doc_id, 0) + 1
                for doc_id, filename, tags in documents:
                    copy.write_row((doc_id, tenant_id, filename, filename, 0, doc_id.hex + doc_id.hex,
                                    "filesystem", "completed", True, counts.get(doc_id, 0), list(tags),
                                    embedder_variant))
            with conn.cursor().copy(_CHUNK_COPY) as copy:
                copy.set_types(_CHUNK_COPY_TYPES)
                for i, (doc_id, content, index, page) in enumerate(chunks):
                    text = content.replace("\x00", "")
                    copy.write_row((uuid.uuid4(), doc_id, tenant_id, text, index, page, page, 0, len(text), len(text),
                                    0, None, None if embeddings is None else PgVector(embeddings[i])))
            params = {"tenant": tenant_id, "docs": [d[0] for d in documents]}
            where = "c.tenant_id = %(tenant)s AND c.document_id = ANY(%(docs)s::uuid[])"
            conn.execute("UPDATE document_chunks c SET term_count = COALESCE((SELECT sum(cardinality(u.positions))"
                         f" FROM unnest(c.content_tsv) u), 0) WHERE {where}", params)
            conn.execute(_POSTINGS_INSERT.format(where=where), params)
            conn.execute(_BLOCKS_INSERT.format(where=where), params | {"block": 0})
            _move_df(conn, tenant_id, sql.SQL(_LEXEME_COUNTS.format(where=where)), ([], []), params)
            row = conn.execute(f"SELECT count(*), COALESCE(sum(term_count), 0) FROM document_chunks c WHERE {where}",
                               params).fetchone()
            assert row is not None
            _bump_usage(conn, tenant_id, int(row[0]), int(row[1]))

    # lifecycle ------------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """``SELECT 1`` within ~2 s (or ``connect_timeout_s``); ``False`` on any failure, never raises."""
        try:
            with self.connection(timeout=min(2.0, self._connect_timeout_s)) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except Exception:
            return False

    def close(self) -> None:
        """Close the pool (idempotent); a later call reopens a new one lazily."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _bump_usage(conn: Conn, tenant_id: str, delta: int, delta_terms: int = 0) -> None:
    """Add ``delta`` chunk rows and ``delta_terms`` term occurrences to the tenant's counters
    (``tenant_usage``), inside the caller's transaction."""
    if delta == 0 and delta_terms == 0:
        return
    conn.execute(
        "INSERT INTO tenant_usage (tenant_id, chunk_rows, term_occurrences)"
        " VALUES (%(t)s, GREATEST(0, %(d)s), GREATEST(0, %(dt)s))"
        " ON CONFLICT (tenant_id) DO UPDATE SET chunk_rows = GREATEST(0, tenant_usage.chunk_rows + %(d)s),"
        " term_occurrences = GREATEST(0, tenant_usage.term_occurrences + %(dt)s), updated_at = now()",
        {"t": tenant_id, "d": delta, "dt": delta_terms},
    )


def _done(indexing: bool) -> str:
    """The status a stored document gets: ``indexing`` while an external serving vector store
    still has to receive its vectors."""
    return "indexing" if indexing else "completed"


def _lock_s3_key(conn: Conn, tenant_id: str, document_id: uuid.UUID) -> tuple[str, str] | None:
    """Serialise the completions of documents of one S3 key (taken before any row lock, so two
    overwrites of a key queue here instead of deadlocking); ``(bucket, key)`` or ``None``."""
    row = conn.execute("SELECT s3_bucket, s3_key FROM documents WHERE id = %s AND tenant_id = %s"
                       " AND s3_key IS NOT NULL AND storage_path = s3_key", (document_id, tenant_id)).fetchone()
    if row is None:
        return None
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{tenant_id}/{row[0]}/{row[1]}",))
    return row[0], row[1]


def _retire_superseded(conn: Conn, tenant_id: str, document_id: uuid.UUID, bucket: str, key: str) -> Document:
    """One key is one live document: of the stored documents the key has held, the one of the
    highest sequencer stays; the others are soft-deleted, in the caller's transaction, so the
    old text leaves search in the instant the new text enters it. A slow ingest of an older
    version that finishes last retires itself. Returns ``document_id``'s row as it now is."""
    conn.execute(
        "WITH held AS (SELECT id, lpad(COALESCE(s3_sequencer, ''), 64, '0') AS seq, processing_status"
        "  FROM documents WHERE tenant_id = %(t)s AND s3_bucket = %(b)s AND s3_key = %(k)s"
        "  AND storage_path = s3_key AND deleted_at IS NULL),"
        " keep AS (SELECT id, seq FROM held WHERE processing_status IN ('completed', 'indexing', 'failed')"
        "  ORDER BY seq DESC, (id = %(id)s) DESC LIMIT 1)"
        " UPDATE documents d SET deleted_at = now(), updated_at = now() FROM held, keep"
        " WHERE d.id = held.id AND held.id <> keep.id"
        # one still in flight retires itself when it completes (or stays failed, as a record)
        " AND held.processing_status IN ('completed', 'indexing', 'failed')",
        {"t": tenant_id, "b": bucket, "k": key, "id": document_id})
    doc = PostgresDocumentStore._doc_row(conn, "SELECT * FROM documents WHERE id = %s AND tenant_id = %s",
                                         (document_id, tenant_id))
    assert doc is not None
    return doc


#: A document's chunks, or (``lo``/``hi`` set) those of one part's chunk_index range.
_DOC_CHUNKS = ("c.document_id = %(doc)s AND c.tenant_id = %(tenant)s"
               " AND (%(lo)s::int IS NULL OR c.chunk_index >= %(lo)s)"
               " AND (%(hi)s::int IS NULL OR c.chunk_index < %(hi)s)")

Terms = tuple[list[str], list[int]]  # lexemes and their chunk counts (document frequencies)

#: A chunk's postings: one per lexeme of its content_tsv, with the chunk's length and page span
#: (migration 0008: page-range searches filter postings without reading the chunk rows).
_POSTINGS_INSERT = (
    "INSERT INTO chunk_terms (tenant_id, lexeme, chunk_id, tf, dl, page_first, page_last)"
    " SELECT c.tenant_id, u.lexeme, c.id, LEAST(cardinality(u.positions), 32767), c.term_count, c.page_number,"
    " COALESCE(c.page_end, c.page_number) FROM document_chunks c CROSS JOIN LATERAL unnest(c.content_tsv) u"
    " WHERE {where}")
#: The same postings packed per (lexeme, document) for the block-scored BM25 leg (migration 0009:
#: 20 bytes a chunk, big-endian int4 chunk_index, tf, dl, first page, last page; a chunk without a
#: page gets a span no page range keeps). ``%(block)s``: the write's first chunk_index (its key).
_BLOCKS_INSERT = (
    "INSERT INTO term_blocks (tenant_id, lexeme, document_id, chunk_lo, postings)"
    " SELECT c.tenant_id, u.lexeme, c.document_id, %(block)s,"
    " string_agg(int4send(c.chunk_index) || int4send(LEAST(cardinality(u.positions), 32767))"
    " || int4send(COALESCE(c.term_count, 0)) || int4send(COALESCE(c.page_number, 2147483647))"
    " || int4send(COALESCE(c.page_end, c.page_number, -2147483648)), ''::bytea ORDER BY c.chunk_index)"
    " FROM document_chunks c CROSS JOIN LATERAL unnest(c.content_tsv) u"
    " WHERE {where} GROUP BY c.tenant_id, u.lexeme, c.document_id")
#: A document's packed postings, or those one part's write made (keyed by the part's first index).
_BLOCKS_DELETE = ("DELETE FROM term_blocks WHERE document_id = %(doc)s AND tenant_id = %(tenant)s"
                  " AND chunk_lo >= COALESCE(%(lo)s::int, 0) AND (%(hi)s::int IS NULL OR chunk_lo < %(hi)s)")
#: Per lexeme, how many of the chunks (``{where}`` over ``c``) hold it, read from their tsvectors
#: (the source of their postings) rather than from the postings table.
_LEXEME_COUNTS = ("SELECT u.lexeme, count(*) FROM document_chunks c CROSS JOIN LATERAL unnest(c.content_tsv) u"
                  " WHERE {where} GROUP BY u.lexeme")


def _doc_params(tenant_id: str, document_id: uuid.UUID, lo: int | None, hi: int | None) -> dict[str, Any]:
    return {"doc": document_id, "tenant": tenant_id, "lo": lo, "hi": hi}


def _terms_of(conn: Conn, tenant_id: str, document_id: uuid.UUID, lo: int | None = None,
              hi: int | None = None) -> Terms:
    """Per lexeme, how many of the document's (range's) chunks hold it: what their removal
    takes from the tenant's document frequencies. Read before the chunks are deleted."""
    params = _doc_params(tenant_id, document_id, lo, hi)
    rows = conn.execute(_LEXEME_COUNTS.format(where=_DOC_CHUNKS), params).fetchall()
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def _move_df(conn: Conn, tenant_id: str, added: sql.Composable | None, removed: Terms, params: dict[str, Any]) -> None:
    """Apply added (a ``SELECT lexeme, n`` over the new postings) minus removed document
    frequencies to ``tenant_terms`` in ONE statement, rows taken in lexeme order: concurrent
    writers of one tenant lock the shared lexemes in the same order, so they queue instead of
    deadlocking. A row is never deleted (a lexeme back at df 0 is kept for the next time)."""
    parts: list[sql.Composable] = []
    if added is not None:
        parts.append(added)
    if removed[0]:
        parts.append(sql.SQL("SELECT l, -n FROM unnest(%(rm_lex)s::text[], %(rm_n)s::int[]) AS r(l, n)"))
        params = params | {"rm_lex": removed[0], "rm_n": removed[1]}
    if not parts:
        return
    conn.execute(sql.SQL(
        "INSERT INTO tenant_terms (tenant_id, lexeme, df)"
        " SELECT %(tenant)s, lexeme, sum(n) FROM ({}) AS delta(lexeme, n)"
        " GROUP BY lexeme HAVING sum(n) <> 0 ORDER BY lexeme"
        " ON CONFLICT (tenant_id, lexeme) DO UPDATE SET df = GREATEST(0, tenant_terms.df + EXCLUDED.df)"
    ).format(sql.SQL(" UNION ALL ").join(parts)), params)


def _index_terms(conn: Conn, tenant_id: str, document_id: uuid.UUID, *, removed: Terms | None = None,
                 lo: int | None = None, hi: int | None = None) -> int:
    """Write the BM25 postings of the document's (just copied) chunks, or of its part's chunk
    range, and move the tenant's document frequencies by them minus ``removed`` (the chunks
    they replaced); return the chunks' total term occurrences. Runs inside the caller's
    transaction, all in SQL: the lexemes come from each chunk's generated ``content_tsv``, so
    postings and the GIN index agree."""
    params = _doc_params(tenant_id, document_id, lo, hi)
    conn.execute(
        "UPDATE document_chunks c SET term_count = COALESCE("
        " (SELECT sum(cardinality(u.positions)) FROM unnest(c.content_tsv) u), 0)"
        f" WHERE {_DOC_CHUNKS}", params)
    conn.execute(_POSTINGS_INSERT.format(where=_DOC_CHUNKS), params)
    conn.execute(_BLOCKS_DELETE, params)
    conn.execute(_BLOCKS_INSERT.format(where=_DOC_CHUNKS), params | {"block": lo or 0})
    _move_df(conn, tenant_id, sql.SQL(_LEXEME_COUNTS.format(where=_DOC_CHUNKS)), removed or ([], []), params)
    row = conn.execute(f"SELECT COALESCE(sum(term_count), 0) FROM document_chunks c WHERE {_DOC_CHUNKS}",
                       params).fetchone()
    return int(row[0]) if row else 0


def _cut(value: Any, width: int) -> str | None:
    """PDF metadata lies and overflows: keep text within the column width."""
    if value is None:
        return None
    text = str(value).strip()
    return text[:width] or None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None
