"""Shapes shared by the domain, the ports and the HTTP API (pydantic v2, no storage concerns).

Units: sizes in bytes, times in UTC, pages 1-based *physical* page indices of the PDF file.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _no_nul(value: str) -> str:
    # NUL cannot be stored in PostgreSQL text; reject it at the boundary with a clear message.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


# A tenant id is an opaque string from the identity layer (JWT `sub` or a tenant claim).
# It is restricted so it can be embedded in S3 keys and cache keys without escaping.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
TenantId = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True), AfterValidator(_no_nul)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Principal(_Frozen):
    """Who is calling. Every operation is scoped to ``tenant_id``."""

    tenant_id: TenantId
    user_id: str = Field(min_length=1, max_length=256)


class DocumentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class Document(BaseModel):
    """A row of ``documents`` as the domain sees it."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    tenant_id: str
    filename: str
    original_filename: str
    file_size: int
    mime_type: str = "application/pdf"
    content_sha256: str
    storage_type: str
    storage_path: str | None = None
    processing_status: DocumentStatus
    error_code: str | None = None
    error_message: str | None = None
    page_count: int | None = None
    word_count: int | None = None
    empty_page_count: int | None = None
    chunk_count: int = 0
    language: str | None = None
    author: str | None = None
    title: str | None = None
    created_date: dt.date | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    storage_class: str = "STANDARD"
    #: Which embedder made the chunk vectors (``querio.embedding.variant_of``); ``None`` until completed.
    embedder_variant: str | None = None
    uploaded_at: dt.datetime
    updated_at: dt.datetime
    processing_started_at: dt.datetime | None = None
    processing_completed_at: dt.datetime | None = None
    accessed_at: dt.datetime | None = None
    archived_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None


class NewDocument(_Frozen):
    """What the domain knows about a document before it is stored (``id`` is chosen here so
    the blob key can embed it before the row exists)."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    tenant_id: TenantId
    original_filename: str
    filename: str
    file_size: int
    content_sha256: str
    storage_type: str
    storage_path: str
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)
    uploaded_by: str | None = None


class Page(_Frozen):
    number: int = Field(ge=1, description="1-based physical page index")
    text: str


class PdfInfo(_Frozen):
    """Document-level metadata read from the PDF (all optional; PDFs lie about these)."""

    title: str | None = None
    author: str | None = None
    created_date: dt.date | None = None
    language: str | None = None


class ParsedPdf(_Frozen):
    page_count: int
    pages: tuple[Page, ...]  # every page, including empty ones
    empty_pages: tuple[int, ...]  # pages with no extractable text (image-only scans)
    info: PdfInfo
    word_count: int


class ChunkDraft(_Frozen):
    """A chunk before it is stored: text plus where it came from.

    ``char_start``/``char_end`` are offsets into the extracted text of ``page_number``
    (end exclusive); a chunk never crosses a page boundary, so ``page_end == page_number``
    today, but the column exists so a future chunker may span pages.
    """

    chunk_index: int = Field(ge=0)
    content: str = Field(min_length=1)
    page_number: int = Field(ge=1)
    page_end: int = Field(ge=1)
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    token_count: int = Field(ge=0)
    section: str | None = None


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


class SearchFilters(BaseModel):
    """Restrictions applied inside both halves of hybrid search (never after the fact)."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[uuid.UUID] | None = Field(default=None, max_length=100)
    tags: list[Tag] | None = Field(default=None, max_length=20, description="match documents with ANY tag")
    page_from: int | None = Field(default=None, ge=1)
    page_to: int | None = Field(default=None, ge=1)
    uploaded_after: dt.datetime | None = None
    uploaded_before: dt.datetime | None = None

    def is_empty(self) -> bool:
        return not any(v not in (None, []) for v in self.model_dump().values())


class ChunkRef(_Frozen):
    """A ranked chunk id from one retriever (vector or full-text)."""

    chunk_id: uuid.UUID
    score: float


class SearchHit(BaseModel):
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    filename: str
    title: str | None = None
    page: int = Field(description="1-based physical page of the chunk's start")
    page_end: int
    chunk_index: int
    score: float = Field(description="fused RRF score (higher is better)")
    vector_rank: int | None = None
    text_rank: int | None = None
    snippet: str
    content: str | None = None


class Citation(_Frozen):
    document_id: uuid.UUID
    filename: str
    page: int
    chunk_id: uuid.UUID


class Answer(BaseModel):
    answer: str
    mode: Literal["extractive", "generative"]
    citations: list[Citation]
    sources: list[SearchHit]
    model: str | None = None


class ChatRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class ChatSession(BaseModel):
    id: uuid.UUID
    title: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    message_count: int


class ChatMessage(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    role: ChatRole
    content: str
    source_chunks: list[uuid.UUID] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime


class TenantStats(BaseModel):
    documents: int
    documents_by_status: dict[str, int]
    chunks: int
    pages: int
    bytes: int
    queries: int
    popular_queries: list[dict[str, Any]] = Field(default_factory=list)
    daily_active_users: int | None = None


class IngestOutcome(BaseModel):
    """Result of one file's ingest: ``status`` is what happened *this time*."""

    status: Literal["ingested", "duplicate", "failed", "in_progress"]
    document: Document | None
    reason: str | None = None
    error_code: str | None = None
    pages: int = 0
    chunks: int = 0
    empty_pages: int = 0
    seconds: float = 0.0


# --- HTTP request bodies -------------------------------------------------------------------

QueryText = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True),
                      AfterValidator(_no_nul)]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: QueryText
    k: int = Field(default=5, ge=1, le=50)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    mode: SearchMode = SearchMode.HYBRID
    alpha: float | None = Field(
        default=None, ge=0.0, le=1.0, description="vector weight in RRF; 0 = full-text only, 1 = vector only"
    )


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: QueryText
    k: int = Field(default=5, ge=1, le=20)
    filters: SearchFilters = Field(default_factory=SearchFilters)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: QueryText
    session_id: uuid.UUID | None = None
    k: int = Field(default=5, ge=1, le=20)
    filters: SearchFilters = Field(default_factory=SearchFilters)


class ChatReply(BaseModel):
    session_id: uuid.UUID
    message: ChatMessage
    answer: Answer


class DocumentList(BaseModel):
    documents: list[Document]
    total: int
    limit: int
    offset: int


class SearchResponse(BaseModel):
    query: str
    mode: SearchMode
    results: list[SearchHit]
    took_ms: float
    cached: bool = False


class UploadResponse(BaseModel):
    outcome: IngestOutcome


class ErrorBody(BaseModel):
    """The one JSON error shape of the API: ``{"error": {"code", "message", "details"}}``."""

    class Detail(BaseModel):
        code: str
        message: str
        details: Any = None
        request_id: str | None = None

    error: Detail


def clean_tags(tags: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Normalise user-supplied tags: trimmed, lower-cased, de-duplicated, order kept."""
    seen: dict[str, None] = {}
    for t in tags or ():
        t = t.replace("\x00", "").strip().lower()
        if t:
            seen.setdefault(t[:64], None)
    return tuple(seen)

