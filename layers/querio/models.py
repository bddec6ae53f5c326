"""Shapes shared by the domain, the ports and the HTTP API (pydantic v2, no storage concerns).

Units: sizes in bytes, times in UTC, pages 1-based *physical* page indices of the PDF file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from querio.text import normalize_line, repair_surrogates


def _no_nul(value: str) -> str:
    # NUL cannot be stored in PostgreSQL text; reject it at the boundary with a clear message.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


# Every store scopes by a *namespace*: a tenant (named by an administrator, arriving as the tenant
# claim) or a user's personal workspace. Both are restricted so they embed in S3, blob and cache
# keys without escaping. A personal workspace is ``u~`` + a digest of the user id; ``~`` is outside
# TENANT_PATTERN, so no tenant claim can ever name a personal workspace, and no user id (whatever
# its value, e.g. a `sub` equal to a tenant id) can ever name a tenant.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
PERSONAL_PREFIX = "u~"
_PERSONAL_DIGEST_CHARS = 32  # 128 bits of SHA-256: collisions between users are out of reach
PERSONAL_PATTERN = rf"^{PERSONAL_PREFIX}[0-9a-f]{{{_PERSONAL_DIGEST_CHARS}}}$"
NAMESPACE_PATTERN = rf"^(?:{TENANT_PATTERN[1:-1]}|{PERSONAL_PATTERN[1:-1]})$"
TenantId = Annotated[str, StringConstraints(pattern=NAMESPACE_PATTERN)]


def personal_namespace(user_id: str) -> str:
    """The personal workspace of ``user_id`` (matches :data:`PERSONAL_PATTERN`, never a tenant)."""
    return PERSONAL_PREFIX + hashlib.sha256(user_id.encode()).hexdigest()[:_PERSONAL_DIGEST_CHARS]

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
    #: chunks stored, but the vector store that serves queries (Pinecone) lacks their vectors
    #: yet: not searchable until re-synced (automatically; see ``QuerioService.sync_pending``)
    INDEXING = "indexing"
    COMPLETED = "completed"
    FAILED = "failed"


class S3Binding(_Frozen):
    """The S3 object (and the event's version of it) a document is built from: one key holds
    one live document, the one of the highest ``sequencer``."""

    bucket: str
    key: str
    sequencer: str | None = None
    etag: str | None = None


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
    s3_bucket: str | None = None
    s3_key: str | None = None
    s3_sequencer: str | None = None
    s3_etag: str | None = None
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
    s3: S3Binding | None = None


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


#: Marks a page boundary inside a chunk's content (a form feed, as ``pdftotext`` writes between
#: pages). Cleaned page text never contains one (``querio.text`` turns controls into spaces).
PAGE_BREAK = "\f"


class ChunkDraft(_Frozen):
    """A chunk before it is stored: text plus where it came from.

    ``char_start``/``char_end`` are offsets into the extracted text of ``page_number``
    (end exclusive). Today's chunker never crosses a page boundary (``page_end ==
    page_number``); a chunk that does spans ``page_number..page_end`` and holds
    :data:`PAGE_BREAK` at each boundary, so search and citations can name the page of the
    matched or quoted text (``querio.retrieval.citing``).
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

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> SearchFilters:
        # An inverted range matches nothing: say so (422) instead of answering an empty result.
        if self.page_from is not None and self.page_to is not None and self.page_from > self.page_to:
            raise ValueError(f"page_from ({self.page_from}) is after page_to ({self.page_to})")
        return self

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
    page: int = Field(description="1-based physical page that holds the matched text (the chunk's "
                                  "page unless it spans pages)")
    page_start: int | None = Field(default=None, description="first page of the chunk")
    page_end: int = Field(description="last page of the chunk")
    chunk_index: int
    score: float = Field(description="fused RRF score (higher is better)")
    vector_rank: int | None = None
    text_rank: int | None = None
    snippet: str
    content: str | None = None


class Citation(_Frozen):
    document_id: uuid.UUID
    filename: str
    page: int = Field(description="the page holding the cited text (of a chunk that spans pages: "
                                  "the page most of the citing sentences quote)")
    pages: list[int] = Field(default_factory=list, description="every page the answer quotes from this source")
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

    #: ``skipped``: nothing to do and nothing wrong (a stale or replayed S3 event, bytes Querio
    #: already holds under that key, an object deleted before its ingest ran)
    status: Literal["ingested", "duplicate", "failed", "in_progress", "skipped"]
    document: Document | None
    reason: str | None = None
    error_code: str | None = None
    pages: int = 0
    chunks: int = 0
    empty_pages: int = 0
    seconds: float = 0.0


# --- HTTP request bodies -------------------------------------------------------------------

def _normalized_query(value: str) -> str:
    # The normalization documents get at ingest (querio.text): full text, the query vector and
    # the cache keys all see the same string, so "\ufb01nancial" finds "financial".
    value = normalize_line(value)
    if not value:
        raise ValueError("must contain visible text")
    return value


def _paired(value: Any) -> Any:
    # A JSON "\ud835" escape decodes to a lone surrogate, which pydantic refuses as "not a
    # valid string": drop it (as at ingest) before the string is validated.
    return repair_surrogates(value) if isinstance(value, str) else value


QueryText = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True),
                      AfterValidator(_no_nul), AfterValidator(_normalized_query), BeforeValidator(_paired)]


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

