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
from querio.ports import AnswerGenerator, BlobStore, Cache, DocumentStore, Embedder, StoredChunk, VectorStore
from querio.retrieval.hybrid import rrf_fuse

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
        if doc.storage_path:
            self.blobs.delete(doc.storage_path)
        self.documents.purge_document(tenant_id, doc.id)

    def reprocess(self, principal: Principal, document_id: uuid.UUID) -> IngestOutcome:
        outcome = self.pipeline.reprocess(principal.tenant_id, document_id)
        self._bump_generation(principal.tenant_id)
        return outcome

    # --- retrieval -----------------------------------------------------------------------------

    def search(self, principal: Principal, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        tenant = principal.tenant_id
        alpha = self._alpha(request)
        cache_key = self._result_key(tenant, "search", request.model_dump(mode="json") | {"alpha": alpha})
        if cache_key and (cached := self.cache.get(cache_key)) is not None:
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
        return self.documents.stats(principal.tenant_id)

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

    def _query_vector(self, query: str) -> np.ndarray:
        embedder = self.embedder
        key = f"emb:{embedder.model_name}:{hashlib.sha256(query.encode()).hexdigest()}"
        if (raw := self.cache.get(key)) is not None and len(raw) == 4 * embedder.dimension:
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
        try:
            self.documents.touch_documents(principal.tenant_id, list({h.document_id for h in hits}))
            self.documents.record_query(principal.tenant_id, principal.user_id, query,
                                        response_time_ms=int(took_ms), chunks_retrieved=len(hits),
                                        success=bool(hits))
        except Exception:  # analytics must never fail a search
            log.warning("could not record query analytics", exc_info=True)

    def _generation_key(self, tenant: str) -> str:
        return f"gen:{tenant}"

    def _bump_generation(self, tenant: str) -> None:
        self.cache.incr(self._generation_key(tenant))

    def _result_key(self, tenant: str, kind: str, payload: dict[str, object]) -> str | None:
        """Key of a cached result, or ``None`` when caching must be skipped (cache down)."""
        if not self.settings.result_cache:
            return None
        generation = self.cache.get_int(self._generation_key(tenant))
        if generation < 0:
            return None
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"res:{tenant}:{generation}:{kind}:{digest}"

