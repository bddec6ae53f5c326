"""Ports: the small interfaces the domain talks to. Adapters live in ``querio.adapters``.

The domain (``service``, ``ingest``, ``retrieval``) imports this module and ``models`` only;
``wiring`` is the one place that picks an adapter for each port from the settings.

Tenancy is part of every signature that reads or writes tenant data, so an adapter cannot
"forget" it: there is no unscoped read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

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

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class StoredBlob:
    key: str
    size: int  # bytes
    sha256: str  # hex digest of the bytes as stored


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a HEAD tells about a stored object (no bytes): enough to recognise bytes Querio
    already holds (``etag``, the ``sha256`` user metadata Querio writes) and the user's
    filename carried as ``filename`` metadata by a presigned upload."""

    etag: str | None
    metadata: dict[str, str]
    storage_class: str = "STANDARD"
    version_id: str | None = None


@runtime_checkable
class BlobStore(Protocol):
    """Raw PDF bytes. Keys are built by the domain (never from a user filename)."""

    storage_type: str  # "filesystem" | "s3", recorded on the document row

    def put(self, key: str, data: bytes, *, content_type: str = "application/pdf",
            metadata: dict[str, str] | None = None) -> StoredBlob:
        """Store atomically (readers never see a partial object). Idempotent for equal bytes."""

    def get(self, key: str) -> bytes:
        """Return the bytes; raise ``NotFound`` if absent, ``CorruptPdf``-free integrity:
        adapters verify the stored sha256 and raise ``TransientError`` on mismatch."""

    def read(self, key: str, *, if_match: str | None = None) -> tuple[bytes, BlobInfo]:
        """``get`` plus the object's :class:`BlobInfo`. With ``if_match`` (an ETag) the read
        succeeds only while the object still has that ETag; otherwise ``StaleObject``."""

    def head(self, key: str) -> BlobInfo:
        """The object's :class:`BlobInfo` without its bytes; ``NotFound`` if absent."""

    def delete(self, key: str) -> None:
        """Delete; deleting a missing key is not an error."""

    def exists(self, key: str) -> bool: ...

    # archive and presigned access (issue 3) ------------------------------------------------
    def storage_class(self, key: str) -> str:
        """``STANDARD``, ``GLACIER``, ...; ``NotFound`` if absent."""

    def restore_status(self, key: str) -> str | None:
        """``None`` (no restore requested), ``"ongoing"`` or ``"available"`` (readable again)."""

    def archive(self, key: str, storage_class: str = "GLACIER", *, sha256: str | None = None) -> str:
        """Move the blob to the archive class, keeping its metadata (and recording ``sha256``
        there, so the copy's ObjectCreated event is recognised as known bytes); idempotent."""

    def restore(self, key: str, days: int = 7) -> str:
        """Start (or keep) a temporary restore; returns ``restore_status`` or ``"not_archived"``."""

    def presign_put(self, key: str, *, expires_s: int, content_type: str = "application/pdf",
                    content_length: int | None = None, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """``{"url", "headers"}`` of a direct upload (``metadata`` is signed: the client must send
        it as ``x-amz-meta-*`` headers); ``Conflict`` where the backend has none."""

    def presign_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        """A time-limited download URL; ``Conflict`` where the backend has none."""


class DownloadUrls(Protocol):
    """Short-lived download links for stored PDFs: S3 presigned, or CloudFront signed (issue 14)."""

    def signed_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        """A URL that GETs ``key`` until ``expires_s`` from now, saved as ``filename``."""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk row joined with the few document fields a search result needs."""

    id: uuid.UUID
    document_id: uuid.UUID
    chunk_index: int
    content: str
    page_number: int
    page_end: int
    filename: str
    title: str | None


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One answered search or question, for ``query_analytics``."""

    tenant_id: str
    user_id: str
    query: str
    response_time_ms: int
    chunks_retrieved: int
    success: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RankedChunk:
    """One result of a hybrid search: the chunk, its fused RRF score and each leg's 1-based rank."""

    chunk: StoredChunk
    score: float
    vector_rank: int | None
    text_rank: int | None


class ChunkSearch(Protocol):
    """A whole hybrid search in one call, for an engine that holds both the vectors and the text
    (PostgreSQL + pgvector: one SQL statement; OpenSearch could do the same in one request).
    Without one (a vector service such as Pinecone), the domain runs the two legs and fuses."""

    name: str

    def hybrid(self, tenant_id: str, query: str, vector: Vector | Callable[[], Vector] | None, *, k: int,
               filters: SearchFilters, alpha: float, rrf_k: int, candidates: int) -> list[RankedChunk]:
        """The ``k`` best live chunks of the tenant by reciprocal rank fusion of the vector leg
        (weight ``alpha``, nearest to ``vector``) and the full-text leg (weight ``1 - alpha``),
        each leg ``candidates`` deep with ``filters`` applied inside it, best first, ranked
        exactly as ``querio.retrieval.hybrid.rrf_fuse`` ranks the two legs. ``vector`` may be a
        callable (the embedding still being computed): call it once, when the vector is needed,
        so the engine's full-text work overlaps the embedding."""


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    """One chunk as an external full-text index holds it: its text and exactly the fields the
    search filters need (``SearchFilters``), read from PostgreSQL after the commit."""

    tenant_id: str
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    chunk_index: int
    page_number: int
    page_end: int  # COALESCE(page_end, page_number), as the SQL filters read it
    content: str
    tags: tuple[str, ...]
    uploaded_at: dt.datetime


class FullTextSearch(Protocol):
    """The full-text leg alone (issue 15): PostgreSQL BM25 (small, mid, local) or OpenSearch
    (enterprise). PostgreSQL stays the system of record; an engine outside it is kept in step
    after each commit (``querio.vectors.sync.IndexSync``) and only ever returns live chunks."""

    name: str  # "postgres" | "opensearch"

    def search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Up to ``k`` live chunks of the tenant by BM25 (English analysis of the normalized
        query, OR of its terms), best first, ``filters`` applied before the limit. An empty or
        stop-word-only query returns ``[]``."""


class TenantIndexes(Protocol):
    """Per-tenant search indexes an engine builds once a tenant is big enough (pgvector: a
    partial HNSW index per tenant)."""

    def index_due(self, tenant_id: str) -> bool:
        """Whether the tenant is big enough for its own index and has none (one cheap read)."""

    def ensure_tenant_index(self, tenant_id: str) -> bool:
        """Build the tenant's index if it is due and missing; whether one was built."""


class DocumentStore(Protocol):
    """Documents and their chunks: the ingest lifecycle and the reads a search needs
    (PostgreSQL in every deployment, the system of record).

    Every method that touches tenant data takes ``tenant_id`` and filters by it.
    """

    def claim_document(self, doc: NewDocument) -> tuple[Document, bool]:
        """Insert a ``pending`` document unless one with the same (tenant, sha256) is live.

        Returns ``(document, created)``. Safe under concurrency: two racing claims for
        the same bytes yield one row (a partial unique index arbitrates).
        """

    def get_document(self, tenant_id: str, document_id: uuid.UUID, *, touch: bool = False) -> Document:
        """Raise ``NotFound`` if absent, soft-deleted or another tenant's."""

    def list_documents(self, tenant_id: str, *, status: DocumentStatus | None = None,
                       limit: int = 50, offset: int = 0) -> tuple[list[Document], int]: ...

    def try_start_processing(self, tenant_id: str, document_id: uuid.UUID, *, stale_after_s: int) -> Document | None:
        """Compare-and-set the status to ``processing``; return ``None`` if another worker holds it.

        Succeeds from ``pending`` or ``failed``, or from ``processing`` whose ``updated_at`` is
        older than ``stale_after_s`` (a crashed worker). Clears ``error_code``/``error_message``.
        """

    def reset_for_reprocess(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        """Set a ``completed`` or ``failed`` document back to ``pending``; ``Conflict`` if busy."""

    def mark_failed(self, tenant_id: str, document_id: uuid.UUID, *, code: str, message: str) -> Document: ...

    def complete_document(self, tenant_id: str, document_id: uuid.UUID, *, chunks: Sequence[ChunkDraft],
                          embeddings: Vector | None, info: dict[str, Any], indexing: bool = False) -> Document:
        """Replace the document's chunks and mark it ``completed`` (``indexing`` when an external
        serving vector store must receive the vectors first) in ONE transaction. A document of
        an S3 key retires the key's other documents in that transaction (the one of the highest
        sequencer stays live, see ``S3Binding``).

        ``embeddings`` (shape ``(len(chunks), dim)``, L2-normalised float32) is written in
        the same transaction when vectors live in PostgreSQL (pgvector); ``None`` when an
        external vector store holds them.
        """

    def finish_indexing(self, tenant_id: str, document_id: uuid.UUID) -> Document | None:
        """``indexing`` → ``completed``; ``None`` if it is not (or no longer) indexing."""

    def soft_delete(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        """Hide the document from every read at once; chunks stop matching searches."""

    def purge_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Remove the row and (by cascade) its chunks and vectors."""

    # chunks ------------------------------------------------------------------------------
    def fulltext_search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Rank live chunks by PostgreSQL full-text relevance (OR of the query's lexemes)."""

    def fetch_chunks(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredChunk]:
        """Live chunks by id; ids of other tenants or deleted documents are silently absent."""

    def corpus_version(self, tenant_id: str) -> str:
        """An opaque token that changes whenever the tenant's searchable corpus may have changed
        (a document added, completed, failed, reprocessed, deleted or purged)."""

    def touch_documents(self, tenant_id: str, document_ids: Sequence[uuid.UUID]) -> None:
        """Record ``accessed_at`` (drives the archive policy); best effort, cheap."""

    # lifecycle ---------------------------------------------------------------------------------
    def healthy(self) -> bool: ...

    def close(self) -> None: ...


class ChatStore(Protocol):
    """Chat sessions and their messages, per tenant."""

    def create_chat_session(self, tenant_id: str, user_id: str, title: str | None) -> ChatSession: ...

    def get_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> ChatSession:
        """``NotFound`` if absent or another tenant's."""

    def list_chat_sessions(self, tenant_id: str, *, limit: int = 50, offset: int = 0) -> list[ChatSession]:
        """Most recently active first."""

    def add_chat_message(self, tenant_id: str, session_id: uuid.UUID, role: ChatRole, content: str, *,
                         source_chunks: Sequence[uuid.UUID] = (), metadata: dict[str, Any] | None = None
                         ) -> ChatMessage:
        """Append a message and bump the session's count atomically; ``NotFound`` as above."""

    def chat_history(self, tenant_id: str, session_id: uuid.UUID, *, limit: int = 100) -> list[ChatMessage]:
        """The last ``limit`` messages, oldest first; ``NotFound`` as above."""

    def delete_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> None:
        """The session and its messages; ``NotFound`` as above."""


class QueryLog(Protocol):
    """Answered queries (``query_analytics``) and the tenant's usage figures."""

    def record_query(self, tenant_id: str, user_id: str, query: str, *, response_time_ms: int,
                     chunks_retrieved: int, success: bool) -> None: ...

    def record_queries(self, records: Sequence[QueryRecord]) -> None:
        """Insert many rows in one round trip (the background writer's batch)."""

    def stats(self, tenant_id: str) -> TenantStats:
        """Counts over the tenant's live documents and its recorded queries."""

    def recent_queries(self, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` recent distinct successful ``(tenant_id, query)`` pairs, newest first."""


class S3Objects(Protocol):
    """Which S3 object each document lives in, and the latest event seen per key (issue 3)."""

    def find_by_s3_key(self, tenant_id: str, bucket: str, key: str) -> Document | None:
        """The live document the key ``s3://bucket/key`` holds now for this tenant, if any."""

    def retired_by_key(self, tenant_id: str, bucket: str, key: str) -> list[Document]:
        """Soft-deleted documents the key once held (superseded by an overwrite), to purge."""

    def set_s3_location(self, tenant_id: str, document_id: uuid.UUID, bucket: str, key: str, *,
                        sequencer: str | None = None, etag: str | None = None) -> None:
        """Record the S3 object a document lives in (never re-bound to another key)."""

    def record_s3_event(self, tenant_id: str, bucket: str, key: str, *, sequencer: str, event_name: str,
                        etag: str | None, version_id: str | None) -> bool:
        """Record the key's latest event; ``False`` when a later one is recorded (stale)."""

    def blob_shared(self, tenant_id: str, storage_path: str, document_id: uuid.UUID) -> bool:
        """Whether another live document keeps its bytes at ``storage_path``."""


class Sweeps(Protocol):
    """The daily job's reads across every tenant (keyset-paged by id) and the archive mark."""

    def indexing_candidates(self, *, after_id: uuid.UUID | None = None, limit: int = 50) -> list[Document]:
        """Live ``indexing`` documents of every tenant."""

    def purge_candidates(self, deleted_before: dt.datetime, *, after_id: uuid.UUID | None = None,
                         limit: int = 50) -> list[Document]:
        """Soft-deleted documents of every tenant deleted before ``deleted_before``."""

    def archive_candidates(self, idle_before: dt.datetime, *, after_id: uuid.UUID | None = None,
                           limit: int = 50) -> list[Document]:
        """Live completed STANDARD documents of every tenant idle since before ``idle_before``."""

    def mark_archived(self, tenant_id: str, document_id: uuid.UUID, storage_class: str) -> Document | None:
        """Record the archive class and time; ``None`` if the document went away meanwhile."""


class IngestParts(Protocol):
    """Page-range ingest parts of large PDFs (issue 3; see ``querio.ingest.parts``)."""

    def start_parts(self, tenant_id: str, document_id: uuid.UUID, ranges: Sequence[tuple[int, int]]) -> None:
        """(Re)plan the parts: earlier parts and staged chunks are dropped."""

    def claim_part(self, tenant_id: str, document_id: uuid.UUID, part_no: int, *, stale_after_s: int
                   ) -> dict[str, Any] | None:
        """Compare-and-set a part to ``processing``; ``None`` if done, held, or its document is not processing."""

    def fail_part(self, tenant_id: str, document_id: uuid.UUID, part_no: int, message: str) -> None: ...

    def store_part(self, tenant_id: str, document_id: uuid.UUID, part_no: int, *, chunks: Sequence[ChunkDraft],
                   embeddings: Vector | None, stats: dict[str, Any], index_stride: int,
                   indexing: bool = False) -> Document | None:
        """Stage a part's chunks and mark it done in one transaction; the last part assembles
        the document (``completed``) and returns it, the others return ``None``."""


class EmbedderVariants(Protocol):
    """Which embedder made each document's vectors (issue 13): a corpus is never queried with a
    model it was not embedded by, and ``querio reembed`` moves it to another."""

    def embedder_variants(self, tenant_id: str, expected: str) -> dict[str, int]:
        """``{}`` if all the tenant's searchable documents were embedded by ``expected``, else
        their counts per variant."""

    def reembed_candidates(self, variant: str, *, tenant_id: str | None = None, after_id: uuid.UUID | None = None,
                           limit: int = 100) -> list[Document]:
        """Searchable documents not embedded by ``variant``, in id order after ``after_id``."""

    def chunk_texts(self, tenant_id: str, document_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str | None]]:
        """``(chunk id, content, section)`` of a document in chunk order."""

    def replace_embeddings(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
                           embeddings: Vector | None, variant: str) -> bool:
        """New vectors for a completed document's chunks and its ``variant``, in one transaction;
        ``False`` if the document changed meanwhile (nothing written)."""


# --- the system of record's vectors, for ``querio vectors`` and the Pinecone mirror --------------
ChunkState = Literal["live", "deleted", "hidden"]


@dataclass(frozen=True, slots=True)
class ChunkVector:
    """One chunk's stored vector with the fields an external index filters on."""

    tenant_id: str
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    page_number: int | None
    page_end: int | None
    chunk_index: int
    tags: tuple[str, ...]
    uploaded_at: dt.datetime
    values: Vector


class VectorSource(Protocol):
    """Reads of the vectors kept in the system of record (pgvector columns). A *live* vector is
    one a vector search can return: a chunk with a vector whose document is ``completed`` and
    not deleted, so counts compare like with like against an external index."""

    def live_counts(self, tenants: Sequence[str] | None = None) -> dict[str, int]:
        """Live vectors per tenant (every tenant, or those named)."""

    def count_after(self, after: uuid.UUID | None) -> int:
        """Live vectors of every tenant whose chunk id sorts after ``after`` (all for ``None``)."""

    def batch_after(self, after: uuid.UUID | None, limit: int) -> list[ChunkVector]:
        """The next ``limit`` live vectors of every tenant in chunk-id order (a keyset page)."""

    def document_vectors(self, tenant_id: str, document_id: uuid.UUID) -> list[ChunkVector]:
        """A ``completed`` or ``indexing`` document's vectors, in chunk order; empty otherwise."""

    def vectors_by_id(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> list[ChunkVector]:
        """Live vectors of the tenant among ``chunk_ids`` (others silently absent)."""

    def live_ids(self, tenant_id: str) -> set[str]:
        """Ids (as strings) of the tenant's live vectors."""

    def chunk_states(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ChunkState]:
        """Per id with a chunk row of the tenant: ``live``, ``deleted`` (document soft-deleted) or
        ``hidden`` (document pending or processing). Ids with no row are absent: orphans."""


class MigrationCheckpoints(Protocol):
    """The resumable cursor of a vector copy (``querio vectors migrate``), by migration name."""

    def load(self, name: str) -> dict[str, Any] | None:
        """``status``, ``last_chunk_id``, ``copied``, ``batches``, ``runs``, ``started_at``,
        ``updated_at``, ``finished_at``; ``None`` if the migration never ran."""

    def begin(self, name: str, *, resumed: bool) -> None:
        """Count one more run of a resumed pass, or start a new pass from the first chunk id."""

    def advance(self, name: str, cursor: uuid.UUID, rows: int) -> None:
        """Commit a copied batch: the cursor moves to ``cursor``, ``rows`` more were copied."""

    def finish(self, name: str) -> None:
        """Mark the pass ``completed``."""


class VectorStore(Protocol):
    """Nearest-neighbour search over chunk embeddings, always within one tenant."""

    name: str  # "pgvector" | "pinecone"
    #: True when vectors are columns of the chunk rows, so ``DocumentStore.complete_document``
    #: writes them in the document's own transaction and ``upsert`` is only for migrations.
    colocated: bool

    def upsert(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
               embeddings: Vector, metadata: Sequence[dict[str, Any]]) -> None: ...

    def query(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Return up to ``k`` chunks by cosine similarity (score in [-1, 1], higher is closer)."""

    def delete_document(self, tenant_id: str, document_id: uuid.UUID) -> None: ...


class Cache(Protocol):
    """A small key-value cache with TTLs. Failures never propagate: a cache that is down
    behaves as a miss (adapters log and count it), so answers keep flowing."""

    name: str

    def healthy(self) -> bool:
        """Whether the cache answers now (a bounded probe for ``/api/health``; never raises)."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str) -> int:
        """Atomically increment and return the counter (used for corpus generations)."""

    def get_int(self, key: str) -> int:
        """The counter's value (0 if unset); ``-1`` when the cache is unavailable."""

    # Issue 3: rate limits and usage statistics. Same failure rule: never raise.
    errors: int  # calls that failed or were skipped because the backend is down

    def rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        """Count one request in ``key``'s fixed window of ``window_s`` seconds, atomically.

        Returns ``(allowed, retry_after_s)``: allowed while the window holds at most ``limit``
        requests (``limit <= 0`` = unlimited). A cache that is down allows (fails open).
        """

    def count_member(self, key: str, member: str, *, ttl_s: int, keep: int) -> None:
        """Add 1 to ``member``'s score in the sorted set ``key``; keep the ``keep`` best."""

    def top_members(self, key: str, n: int) -> list[tuple[str, int]] | None:
        """The ``n`` best ``(member, score)``, best first; ``None`` if the cache is down."""

    def add_distinct(self, key: str, member: str, *, ttl_s: int) -> None:
        """Add ``member`` to the distinct-count set ``key`` (HyperLogLog in Redis)."""

    def count_distinct(self, key: str) -> int | None:
        """Estimated number of distinct members (0 if unset); ``None`` if the cache is down."""


class Embedder(Protocol):
    """Text → L2-normalised float32 vectors (all-MiniLM-L6-v2: 384 dimensions)."""

    model_name: str
    dimension: int
    max_tokens: int  # the model's window in word pieces, [CLS]/[SEP] included (256)

    @property
    def variant(self) -> str:
        """Model + quantization + export hash: recorded with every document's vectors; a corpus
        is searched only with the variant it was embedded with (``querio.embedding.variant_of``)."""

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """Shape ``(len(texts), dimension)``."""

    def embed_query(self, text: str) -> Vector:
        """Shape ``(dimension,)``."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens and without truncation."""


class AnswerGenerator(Protocol):
    """Turns a question and ranked passages into an answer. Pluggable (Bedrock in issue 3)."""

    @property
    def mode(self) -> str:
        """``"extractive"`` or ``"generative"``: how the last answer (in this thread) was made."""

    @property
    def model(self) -> str | None:
        """The generating model of the last answer, ``None`` for extractive answers."""

    def answer(self, question: str, passages: Sequence[StoredChunk],
               history: Sequence[ChatMessage] = ()) -> str: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def batched(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
