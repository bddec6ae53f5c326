"""Ports: the small interfaces the domain talks to. Adapters live in ``querio.adapters``.

The domain (``service``, ``ingest``, ``retrieval``) imports this module and ``models`` only;
``wiring`` is the one place that picks an adapter for each port from the settings.

Tenancy is part of every signature that reads or writes tenant data, so an adapter cannot
"forget" it: there is no unscoped read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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

    def delete(self, key: str) -> None:
        """Delete; deleting a missing key is not an error."""

    def exists(self, key: str) -> bool: ...


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


class DocumentStore(Protocol):
    """Metadata, chunks, chat and analytics (PostgreSQL in every deployment).

    Every method that touches tenant data takes ``tenant_id`` and filters by it in SQL.
    """

    # documents --------------------------------------------------------------------------
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
                          embeddings: Vector | None, info: dict[str, Any]) -> Document:
        """Replace the document's chunks and mark it ``completed`` in ONE transaction.

        ``embeddings`` (shape ``(len(chunks), dim)``, L2-normalised float32) is written in
        the same transaction when vectors live in PostgreSQL (pgvector); ``None`` when an
        external vector store holds them.
        """

    def soft_delete(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        """Hide the document from every read at once; chunks stop matching searches."""

    def purge_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Remove the row and (by cascade) its chunks and vectors."""

    # chunks ------------------------------------------------------------------------------
    def fulltext_search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """Rank live chunks by PostgreSQL full-text relevance (OR of the query's lexemes)."""

    def fetch_chunks(self, tenant_id: str, chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredChunk]:
        """Live chunks by id; ids of other tenants or deleted documents are silently absent."""

    def touch_documents(self, tenant_id: str, document_ids: Sequence[uuid.UUID]) -> None:
        """Record ``accessed_at`` (drives the archive policy); best effort, cheap."""

    # chat ----------------------------------------------------------------------------------
    def create_chat_session(self, tenant_id: str, user_id: str, title: str | None) -> ChatSession: ...

    def get_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> ChatSession: ...

    def list_chat_sessions(self, tenant_id: str, *, limit: int = 50, offset: int = 0) -> list[ChatSession]: ...

    def add_chat_message(self, tenant_id: str, session_id: uuid.UUID, role: ChatRole, content: str, *,
                         source_chunks: Sequence[uuid.UUID] = (), metadata: dict[str, Any] | None = None
                         ) -> ChatMessage: ...

    def chat_history(self, tenant_id: str, session_id: uuid.UUID, *, limit: int = 100) -> list[ChatMessage]: ...

    def delete_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> None: ...

    # analytics -------------------------------------------------------------------------------
    def record_query(self, tenant_id: str, user_id: str, query: str, *, response_time_ms: int,
                     chunks_retrieved: int, success: bool) -> None: ...

    def stats(self, tenant_id: str) -> TenantStats: ...

    # lifecycle ---------------------------------------------------------------------------------
    def healthy(self) -> bool: ...

    def close(self) -> None: ...


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

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str) -> int:
        """Atomically increment and return the counter (used for corpus generations)."""

    def get_int(self, key: str) -> int: ...


class Embedder(Protocol):
    """Text → L2-normalised float32 vectors (all-MiniLM-L6-v2: 384 dimensions)."""

    model_name: str
    dimension: int
    max_tokens: int  # the model's window in word pieces, [CLS]/[SEP] included (256)

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """Shape ``(len(texts), dimension)``."""

    def embed_query(self, text: str) -> Vector:
        """Shape ``(dimension,)``."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens and without truncation."""


class AnswerGenerator(Protocol):
    """Turns a question and ranked passages into an answer. Pluggable (Bedrock in issue 3)."""

    mode: str  # "extractive" | "generative"
    model: str | None

    def answer(self, question: str, passages: Sequence[StoredChunk],
               history: Sequence[ChatMessage] = ()) -> str: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def batched(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
