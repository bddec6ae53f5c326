"""The domain: ingest, search, query, chat, delete and stats, for one tenant at a time.

Everything here talks to ports only; ``wiring`` builds the adapters. Every public method
takes a :class:`~querio.models.Principal` and scopes all reads and writes to its tenant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Literal

import numpy as np

from querio.config import Settings
from querio.errors import EmbedderMismatch, RateLimited
from querio.ingest.events import IngestPart
from querio.ingest.pipeline import IngestPipeline
from querio.models import (
    Answer,
    ChatMessage,
    ChatReply,
    ChatRequest,
    ChatRole,
    ChatSession,
    Citation,
    Document,
    DocumentList,
    DocumentStatus,
    IngestOutcome,
    Principal,
    QueryRequest,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchRequest,
    SearchResponse,
    TenantStats,
)
from querio.observability import emit
from querio.ports import (
    AnswerGenerator,
    BlobStore,
    Cache,
    DocumentStore,
    Embedder,
    StoredChunk,
    VectorStore,
    utcnow,
)
from querio.reembed import ReembedReport, ReembedStep, reembed
from querio.retrieval.hybrid import rrf_fuse
from querio.vectors.sync import IndexSync

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+", re.UNICODE)


def result_ttl_s(query: str) -> int:
    """The seed's dynamic TTL rules (``QueryCache._determine_ttl``), in seconds."""
    lowered = query.lower()
    if "latest" in lowered or "recent" in lowered:
        return 300  # time-sensitive: 5 minutes
    if len(query.split()) < 3:
        return 1800  # short queries: 30 minutes
    return 3600  # complex queries: 1 hour


def make_snippet(text: str, query: str, width: int = 240) -> str:
    """The ``width``-character window of ``text`` with the most query words in it."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    terms = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    best, best_at = -1, 0
    step = max(width // 4, 1)
    for start in range(0, max(len(flat) - width, 0) + step, step):
        window = flat[start : start + width].lower()
        hits = sum(window.count(t) for t in terms)
        if hits > best:
            best, best_at = hits, start
    snippet = flat[best_at : best_at + width]
    return ("…" if best_at > 0 else "") + snippet + ("…" if best_at + width < len(flat) else "")


class QuerioService:
    def __init__(self, *, settings: Settings, documents: DocumentStore, vectors: VectorStore, blobs: BlobStore,
                 cache: Cache, embedder: Callable[[], Embedder],
                 answerer: Callable[[Embedder], AnswerGenerator]) -> None:
        self.settings = settings
        self.documents = documents
        self.vectors = vectors
        self.blobs = blobs
        self.cache = cache
        self._embedder_factory = embedder
        self._answerer_factory = answerer
        self.pipeline = IngestPipeline(settings, documents, vectors, blobs, lambda: self.embedder)

    # lazily built: health checks and document listing never load the model
    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder_factory()

    @cached_property
    def answerer(self) -> AnswerGenerator:
        return self._answerer_factory(self.embedder)

    # --- documents -----------------------------------------------------------------------------

    def ingest(self, principal: Principal, data: bytes, filename: str, *, tags: Sequence[str] = (),
               progress: Callable[[str], None] | None = None) -> IngestOutcome:
        """Ingest one PDF for the caller's tenant. Bad files give a ``failed`` outcome, not an error."""
        outcome = self.pipeline.ingest(principal.tenant_id, data, filename, tags=tags,
                                       uploaded_by=principal.user_id, progress=progress)
        self._sync_vectors(principal.tenant_id, outcome)
        if outcome.status in ("ingested", "failed"):
            self._bump_generation(principal.tenant_id)
        return outcome

    def list_documents(self, principal: Principal, *, status: DocumentStatus | None = None, limit: int = 50,
                       offset: int = 0) -> DocumentList:
        docs, total = self.documents.list_documents(principal.tenant_id, status=status, limit=limit,
                                                    offset=offset)
        return DocumentList(documents=docs, total=total, limit=limit, offset=offset)

    def get_document(self, principal: Principal, document_id: uuid.UUID) -> Document:
        return self.documents.get_document(principal.tenant_id, document_id)

    def delete_document(self, principal: Principal, document_id: uuid.UUID, *, purge: bool = True) -> Document:
        """Soft-delete (hidden from every read at once), then, unless ``purge=False`` (the
        archive function's retention path), remove the blob, the chunks and the vectors."""
        doc = self.documents.soft_delete(principal.tenant_id, document_id)
        self._bump_generation(principal.tenant_id)
        if purge:
            self.purge(principal.tenant_id, doc)
        return doc

    def purge(self, tenant_id: str, doc: Document) -> None:
        if not self.vectors.colocated:
            self.vectors.delete_document(tenant_id, doc.id)
        elif isinstance(self.vectors, IndexSync):  # an external index mirrors the chunk rows
            self.vectors.document_purged(tenant_id, doc.id)
        if doc.storage_path:
            self.blobs.delete(doc.storage_path)
        self.documents.purge_document(tenant_id, doc.id)

    def reprocess(self, principal: Principal, document_id: uuid.UUID) -> IngestOutcome:
        outcome = self.pipeline.reprocess(principal.tenant_id, document_id)
        self._sync_vectors(principal.tenant_id, outcome, replaced=True)
        self._bump_generation(principal.tenant_id)
        return outcome

    def reembed(self, *, tenant_id: str | None, progress: Callable[[ReembedStep], None] | None = None,
                limit: int | None = None) -> ReembedReport:
        """Embed again, with the running embedder, the documents of ``tenant_id`` (``None``: every
        tenant) that another variant embedded (see :mod:`querio.reembed`)."""
        report = reembed(self.documents, self.vectors, self.embedder, tenant_id=tenant_id, progress=progress,
                         limit=limit)
        for tenant in report.tenants:
            self._bump_generation(tenant)
        return report

    # --- retrieval -----------------------------------------------------------------------------

    def search(self, principal: Principal, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        tenant = principal.tenant_id
        alpha = self._alpha(request)
        cache_key = self._result_key(tenant, "search", request.model_dump(mode="json") | {"alpha": alpha})
        if cache_key and (cached := self._cache_get(cache_key)) is not None:
            self._track_query(principal, request.query)
            response = SearchResponse.model_validate_json(cached)
            response.cached = True
            response.took_ms = round((time.perf_counter() - started) * 1000, 3)
            return response
        hits = self._retrieve(tenant, request.query, request.k, request.filters, alpha)
        took = round((time.perf_counter() - started) * 1000, 3)
        response = SearchResponse(query=request.query, mode=request.mode, results=hits, took_ms=took)
        if cache_key:
            self.cache.set(cache_key, response.model_dump_json().encode(), result_ttl_s(request.query))
        self._after_query(principal, request.query, hits, took)
        return response

    def query(self, principal: Principal, request: QueryRequest) -> Answer:
        started = time.perf_counter()
        hits = self._retrieve(principal.tenant_id, request.query, request.k, request.filters,
                              self.settings.hybrid_alpha)
        answer = self._answer(principal.tenant_id, request.query, hits, ())
        self._after_query(principal, request.query, hits, (time.perf_counter() - started) * 1000)
        return answer

    def chat(self, principal: Principal, request: ChatRequest) -> ChatReply:
        tenant = principal.tenant_id
        if request.session_id is None:
            session = self.documents.create_chat_session(tenant, principal.user_id, request.message[:80])
        else:
            session = self.documents.get_chat_session(tenant, request.session_id)
        history = self.documents.chat_history(tenant, session.id, limit=20)
        self.documents.add_chat_message(tenant, session.id, ChatRole.USER, request.message)
        # Retrieval sees the last user turn too, so follow-ups ("and on Windows?") keep context.
        previous = next((m.content for m in reversed(history) if m.role == ChatRole.USER), "")
        retrieval_query = f"{previous} {request.message}".strip() if previous else request.message
        hits = self._retrieve(tenant, retrieval_query, request.k, request.filters, self.settings.hybrid_alpha)
        answer = self._answer(tenant, request.message, hits, history)
        message = self.documents.add_chat_message(
            tenant, session.id, ChatRole.ASSISTANT, answer.answer,
            source_chunks=[h.chunk_id for h in hits],
            metadata={"mode": answer.mode, "citations": [c.model_dump(mode="json") for c in answer.citations]})
        return ChatReply(session_id=session.id, message=message, answer=answer)

    def list_chat_sessions(self, principal: Principal, *, limit: int = 50, offset: int = 0) -> list[ChatSession]:
        return self.documents.list_chat_sessions(principal.tenant_id, limit=limit, offset=offset)

    def chat_history(self, principal: Principal, session_id: uuid.UUID) -> list[ChatMessage]:
        self.documents.get_chat_session(principal.tenant_id, session_id)  # NotFound for others' sessions
        return self.documents.chat_history(principal.tenant_id, session_id)

    def delete_chat_session(self, principal: Principal, session_id: uuid.UUID) -> None:
        self.documents.delete_chat_session(principal.tenant_id, session_id)

    def stats(self, principal: Principal) -> TenantStats:
        return self._usage_stats(principal.tenant_id, self.documents.stats(principal.tenant_id))

    def health(self) -> dict[str, object]:
        db = self.documents.healthy()
        return {"status": "ok" if db else "degraded", "database": db, "cache": self.cache.name,
                "vector_backend": self.vectors.name}

    # --- internals -----------------------------------------------------------------------------

    def _alpha(self, request: SearchRequest) -> float:
        if request.mode == SearchMode.VECTOR:
            return 1.0
        if request.mode == SearchMode.TEXT:
            return 0.0
        return self.settings.hybrid_alpha if request.alpha is None else request.alpha

    def _retrieve(self, tenant: str, query: str, k: int, filters: SearchFilters, alpha: float) -> list[SearchHit]:
        n = k * self.settings.candidate_multiplier
        if alpha > 0:
            self._check_embedder(tenant)
        vector_refs = self.vectors.query(tenant, self._query_vector(query), n, filters) if alpha > 0 else []
        text_refs = self.documents.fulltext_search(tenant, query, n, filters) if alpha < 1 else []
        fused = rrf_fuse(vector_refs, text_refs, alpha=alpha, rrf_k=self.settings.rrf_k, limit=k)
        chunks = self.documents.fetch_chunks(tenant, [f.chunk_id for f in fused])
        hits = []
        for f in fused:
            c = chunks.get(f.chunk_id)
            if c is None:  # deleted between the two reads, or a vector with no chunk row
                continue
            hits.append(SearchHit(
                chunk_id=c.id, document_id=c.document_id, filename=c.filename, title=c.title,
                page=c.page_number, page_end=c.page_end, chunk_index=c.chunk_index, score=round(f.score, 6),
                vector_rank=f.vector_rank, text_rank=f.text_rank, snippet=make_snippet(c.content, query),
                content=c.content))
        return hits

    def _check_embedder(self, tenant: str) -> None:
        """Refuse a vector search of a corpus embedded by another variant: its neighbours would be
        silently wrong. Full-text search still works; ``querio reembed`` converts the corpus."""
        running = self.embedder.variant
        found = self.documents.embedder_variants(tenant, running)
        if found:
            other = ", ".join(f"{v} ({n} documents)" for v, n in found.items() if v != running)
            raise EmbedderMismatch(
                f"this corpus was embedded by {other}, but the running embedder is {running}; vector search"
                f" would compare incompatible vectors. Run `querio reembed --tenant {tenant}` (or set"
                " QUERIO_MODEL_PRECISION / QUERIO_MODEL_DIR back to the corpus's model); text search"
                " (alpha 0) still works.", details={"running": running, "corpus": found})

    def _query_vector(self, query: str) -> np.ndarray:
        embedder = self.embedder
        # the variant, not just the model: a quantized model's query vector differs
        key = f"emb:{embedder.variant}:{hashlib.sha256(query.encode()).hexdigest()}"
        if (raw := self._cache_get(key)) is not None and len(raw) == 4 * embedder.dimension:
            return np.frombuffer(raw, dtype=np.float32)
        vector = embedder.embed_query(query).astype(np.float32)
        self.cache.set(key, vector.tobytes(), self.settings.embedding_cache_ttl_s)
        return vector

    def _answer(self, tenant: str, question: str, hits: list[SearchHit], history: Sequence[ChatMessage]) -> Answer:
        passages = [StoredChunk(id=h.chunk_id, document_id=h.document_id, chunk_index=h.chunk_index,
                                content=h.content or "", page_number=h.page, page_end=h.page_end,
                                filename=h.filename, title=h.title) for h in hits]
        text = self.answerer.answer(question, passages, history)
        citations = [Citation(document_id=h.document_id, filename=h.filename, page=h.page, chunk_id=h.chunk_id)
                     for h in hits[:3]]
        mode: Literal["extractive", "generative"] = (
            "generative" if self.answerer.mode == "generative" else "extractive")
        return Answer(answer=text, mode=mode, citations=citations, sources=hits, model=self.answerer.model)

    def _after_query(self, principal: Principal, query: str, hits: list[SearchHit], took_ms: float) -> None:
        self._track_query(principal, query)
        try:
            self.documents.touch_documents(principal.tenant_id, list({h.document_id for h in hits}))
            self.documents.record_query(principal.tenant_id, principal.user_id, query,
                                        response_time_ms=int(took_ms), chunks_retrieved=len(hits),
                                        success=bool(hits))
        except Exception:  # analytics must never fail a search
            log.warning("could not record query analytics", exc_info=True)

    def _sync_vectors(self, tenant: str, outcome: IngestOutcome, *, replaced: bool = False) -> None:
        """Copy a just-completed document's vectors to an external index (Pinecone), after the
        commit (``replaced``: a reprocess, whose old records go); the hook logs and counts its
        own failures (``querio vectors reconcile`` repairs)."""
        if outcome.status == "ingested" and outcome.document is not None and isinstance(self.vectors, IndexSync):
            self.vectors.document_stored(tenant, outcome.document.id, replaced=replaced)

    def _generation_key(self, tenant: str) -> str:
        return f"gen:{tenant}"

    def _bump_generation(self, tenant: str) -> None:
        self.cache.incr(self._generation_key(tenant))

    def _result_key(self, tenant: str, kind: str, payload: dict[str, object]) -> str | None:
        """Key of a cached result, or ``None`` when caching must be skipped.

        Two generations are in the key. The cache's ``gen:`` counter is bumped by every upload,
        delete and reprocess; a bump can fail while Redis is down, so the key also carries the
        corpus version read from PostgreSQL (``DocumentStore.corpus_version``), which changes in
        the same transaction as the corpus itself. A stale result can therefore never be served,
        whatever Redis went through.
        """
        if not self.settings.result_cache:
            return None
        generation = self.cache.get_int(self._generation_key(tenant))
        if generation < 0:
            return None
        version = self.documents.corpus_version(tenant)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"res:{tenant}:{generation}:{version}:{kind}:{digest}"

    # --- S3, archive and restore (issue 3) --------------------------------------------------------
    #: A presigned upload stays valid this long: enough to start a large upload on a slow link.
    UPLOAD_URL_EXPIRES_S = 900
    #: Download links are short-lived: they are bearer tokens for the document.
    DOWNLOAD_URL_EXPIRES_S = 300
    #: Days a restored (GLACIER) copy stays readable.
    RESTORE_DAYS = 7
    #: The user recorded on documents that arrive by S3 upload (the tenant comes from the key).
    S3_UPLOAD_USER = "s3-upload"

    def create_upload_url(self, principal: Principal, filename: str, content_length: int | None) -> dict[str, object]:
        """A presigned PUT to ``tenants/{tenant}/uploads/{uuid}.pdf``. The user's filename never
        becomes part of the key; the upload's ObjectCreated notification starts the ingest."""
        from querio.errors import PayloadTooLarge, ValidationFailed
        from querio.ingest.events import upload_key
        from querio.ingest.pipeline import display_filename

        if content_length is not None:
            if content_length <= 0:
                raise ValidationFailed("content_length must be positive")
            if content_length > self.settings.max_file_bytes:
                raise PayloadTooLarge(
                    f"the file is {content_length:,} bytes; the limit is {self.settings.max_file_bytes:,}",
                    details={"max_bytes": self.settings.max_file_bytes})
        key = upload_key(principal.tenant_id, f"{uuid.uuid4()}.pdf")
        signed = self.blobs.presign_put(key, expires_s=self.UPLOAD_URL_EXPIRES_S, content_type="application/pdf",
                                        content_length=content_length)
        return {"url": signed["url"], "key": key, "expires_in": self.UPLOAD_URL_EXPIRES_S,
                "headers": signed["headers"], "filename": display_filename(filename or "document.pdf")}

    def create_download_url(self, principal: Principal, document_id: uuid.UUID) -> dict[str, object]:
        """A short-lived presigned GET; ``Conflict`` while the blob is archived and not restored."""
        from querio.errors import Conflict, NotFound

        doc = self.documents.get_document(principal.tenant_id, document_id, touch=True)
        if not doc.storage_path:
            raise NotFound(f"document {document_id} has no stored file")
        if doc.storage_class != "STANDARD":
            status = self.blobs.restore_status(doc.storage_path)
            if status != "available":
                raise Conflict(
                    f"document {document_id} is archived ({doc.storage_class}); "
                    + ("its restore is in progress" if status == "ongoing" else "restore it first"),
                    details={"storage_class": doc.storage_class, "restore": status or "not_requested"})
        url = self.blobs.presign_get(doc.storage_path, expires_s=self.DOWNLOAD_URL_EXPIRES_S, filename=doc.filename)
        return {"url": url, "expires_in": self.DOWNLOAD_URL_EXPIRES_S}

    def restore_document(self, principal: Principal, document_id: uuid.UUID) -> Document:
        """Start a restore of an archived document (idempotent; a no-op when not archived)."""
        doc = self.documents.get_document(principal.tenant_id, document_id, touch=True)
        if doc.storage_class != "STANDARD" and doc.storage_path:
            self.blobs.restore(doc.storage_path, days=self.RESTORE_DAYS)
        return doc

    def ingest_s3_object(self, tenant_id: str, bucket: str, key: str, *,
                         enqueue: Callable[[Sequence[dict[str, object]]], None] | None = None) -> IngestOutcome:
        """Ingest an uploaded object for the tenant named by its key; the document points at
        the object itself (no copy). Bad PDFs give a ``failed`` outcome; dependency failures
        raise ``TransientError`` (so the queue retries). Redelivery gives the same document
        (sha256 dedupe); a *different* key with identical bytes is a duplicate whose redundant
        object is deleted (its ObjectRemoved then matches no document).

        With ``enqueue``, a PDF of more than ``pages_per_part`` pages is split into page-range
        work items instead (see :mod:`querio.ingest.parts`); the outcome is ``in_progress``."""
        from querio.errors import NotFound, PermanentIngestError
        from querio.ingest import parts
        from querio.ingest.pdf import count_pages

        principal = Principal(tenant_id=tenant_id, user_id=self.S3_UPLOAD_USER)
        try:
            data = self.blobs.get(key)
        except NotFound:
            return IngestOutcome(status="failed", document=None, error_code="not_found",
                                 reason="the object no longer exists (deleted before ingest)")
        page_count = 0
        if enqueue is not None:
            try:
                page_count = count_pages(data, max_pages=self.settings.max_pages)
            except PermanentIngestError:
                page_count = 0  # the pipeline records the failure with its code
        if page_count > self.settings.pages_per_part and enqueue is not None:
            outcome = parts.split_upload(self, tenant_id, bucket, key, data, page_count, enqueue)
        else:
            outcome = self.pipeline.ingest(tenant_id, data, key.rsplit("/", 1)[-1], uploaded_by=principal.user_id,
                                           storage_key=key)
        doc = outcome.document
        self._sync_vectors(tenant_id, outcome)
        if doc is not None:
            self.documents.set_s3_location(tenant_id, doc.id, bucket, key)
            if outcome.status == "duplicate" and doc.storage_path != key:
                self.blobs.delete(key)
        if outcome.status in ("ingested", "failed"):
            self._bump_generation(tenant_id)
        return outcome

    def ingest_part(self, item: IngestPart) -> IngestOutcome:
        """One page-range part of a large PDF (see :mod:`querio.ingest.parts`)."""
        from querio.ingest import parts

        outcome = parts.ingest_part(self, item)
        self._sync_vectors(item.tenant_id, outcome)
        if outcome.status in ("ingested", "failed"):
            self._bump_generation(item.tenant_id)
        return outcome

    def delete_s3_object_document(self, tenant_id: str, bucket: str, key: str) -> Document | None:
        """Delete (and purge) the document uploaded as ``key``; ``None`` when there is none
        (already deleted, a duplicate's object, or never ingested): idempotent."""
        from querio.errors import NotFound

        doc = self.documents.find_by_s3_key(tenant_id, bucket, key)
        if doc is None:
            return None
        try:
            return self.delete_document(Principal(tenant_id=tenant_id, user_id=self.S3_UPLOAD_USER), doc.id)
        except NotFound:
            return None

    def archive_document(self, doc: Document) -> Document | None:
        """Move one idle document's blob to GLACIER and record it (archive job; any tenant)."""
        if not doc.storage_path:
            return None
        storage_class = self.blobs.archive(doc.storage_path)
        return self.documents.mark_archived(doc.tenant_id, doc.id, storage_class)

    # --- caching, rate limits and stats (issue 3) ------------------------------------------------
    #
    # Result-cache freshness: see ``_result_key``.

    RATE_WINDOW_S = 60
    POPULAR_KEEP = 200  # distinct queries tallied per tenant (the best are reported)
    POPULAR_TTL_S = 30 * 86_400
    POPULAR_SHOWN = 10
    POPULAR_MAX_CHARS = 200
    DAU_TTL_S = 2 * 86_400

    def admit(self, principal: Principal) -> None:
        """Per-request gate (the router calls it before dispatch): rate limit, then count the
        user as active today. Raises :class:`RateLimited`; a cache that is down admits."""
        limit = self.settings.rate_limit_per_minute
        if limit > 0:
            user = hashlib.sha256(principal.user_id.encode()).hexdigest()[:32]
            allowed, retry_after = self.cache.rate_limit(f"rl:{principal.tenant_id}:{user}", limit,
                                                         self.RATE_WINDOW_S)
            if not allowed:
                emit("RateLimited")
                raise RateLimited(f"more than {limit} requests per minute; retry in {retry_after} s",
                                  retry_after_s=retry_after)
        self.cache.add_distinct(self._dau_key(principal.tenant_id), principal.user_id, ttl_s=self.DAU_TTL_S)

    @staticmethod
    def normalise_query(query: str, max_chars: int = POPULAR_MAX_CHARS) -> str:
        return " ".join(query.lower().split())[:max_chars]

    def _track_query(self, principal: Principal, query: str) -> None:
        text = self.normalise_query(query)
        if text:
            self.cache.count_member(f"pop:{principal.tenant_id}", text, ttl_s=self.POPULAR_TTL_S,
                                    keep=self.POPULAR_KEEP)

    def _dau_key(self, tenant: str) -> str:
        return f"dau:{tenant}:{utcnow().date().isoformat()}"

    def _usage_stats(self, tenant: str, stats: TenantStats) -> TenantStats:
        top = self.cache.top_members(f"pop:{tenant}", self.POPULAR_SHOWN)
        dau = self.cache.count_distinct(self._dau_key(tenant))
        return stats.model_copy(update={
            "popular_queries": [{"query": q, "count": n} for q, n in (top or [])],
            "daily_active_users": dau})

    def _cache_get(self, key: str) -> bytes | None:
        value = self.cache.get(key)
        emit("CacheHits" if value is not None else "CacheMisses")
        return value

