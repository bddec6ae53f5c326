"""The domain: ingest, search, query, chat, delete and stats, for one tenant at a time.

Everything here talks to ports only; ``wiring`` builds the adapters. Every public method
takes a :class:`~querio.models.Principal` and scopes all reads and writes to its tenant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Literal

import numpy as np

from querio.analytics import AnalyticsWriter
from querio.config import Settings
from querio.errors import EmbedderMismatch, NotFound, RateLimited, ValidationFailed
from querio.ingest.events import (
    FILENAME_METADATA,
    IngestPart,
    S3Version,
    decode_filename,
    encode_filename,
    sequencer_key,
)
from querio.ingest.pipeline import IngestPipeline, display_filename
from querio.models import (
    Answer,
    ChatMessage,
    ChatReply,
    ChatRequest,
    ChatRole,
    ChatSession,
    Document,
    DocumentList,
    DocumentStatus,
    IngestOutcome,
    Principal,
    QueryRequest,
    S3Binding,
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
    ChatStore,
    ChunkSearch,
    DocumentStore,
    DownloadUrls,
    Embedder,
    EmbedderVariants,
    FullTextSearch,
    IngestParts,
    QueryLog,
    QueryRecord,
    RankedChunk,
    S3Objects,
    StoredChunk,
    Sweeps,
    TenantIndexes,
    VectorStore,
    utcnow,
)
from querio.reembed import ReembedReport, ReembedStep, reembed
from querio.retrieval.citing import cited_sources, page_of
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


def _skipped(reason: str) -> IngestOutcome:
    return IngestOutcome(status="skipped", document=None, reason=reason)


def make_snippet(text: str, query: str, width: int = 240) -> str:
    """The ``width``-character window of ``text`` with the most query words in it."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    terms = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    lowered = flat.lower()
    step = max(width // 4, 1)
    windows = len(range(0, max(len(flat) - width, 0) + step, step))  # window i starts at i * step
    # each occurrence (at p, n long) lies whole in windows ceil((p + n - width) / step) ..
    # floor(p / step): mark that run once in a difference array instead of counting every term
    # in every window (1.6 ms of a 10-result search, 10 snippets, ~12 ms in all)
    runs = [0] * (windows + 1)
    for term in terms:
        n = len(term)
        for p in _occurrences(lowered, term):
            first, last = max(0, -((width - p - n) // step)), min(windows - 1, p // step)
            if first <= last:
                runs[first] += 1
                runs[last + 1] -= 1
    best, best_at, hits = -1, 0, 0
    for i in range(windows):
        hits += runs[i]
        if hits > best:  # the first window with the most hits
            best, best_at = hits, i * step
    snippet = flat[best_at : best_at + width]
    return ("…" if best_at > 0 else "") + snippet + ("…" if best_at + width < len(flat) else "")


def _occurrences(text: str, term: str) -> list[int]:
    """Start offsets of ``term``'s non-overlapping occurrences in ``text``."""
    out, at = [], text.find(term)
    while at >= 0:
        out.append(at)
        at = text.find(term, at + len(term))
    return out


class QuerioService:
    def __init__(self, *, settings: Settings, documents: DocumentStore, chats: ChatStore, query_log: QueryLog,
                 s3_objects: S3Objects, sweeps: Sweeps, parts: IngestParts, vectors: VectorStore, blobs: BlobStore,
                 cache: Cache, embedder: Callable[[], Embedder],
                 answerer: Callable[[Embedder], AnswerGenerator], urls: DownloadUrls | None = None,
                 search: ChunkSearch | None = None, indexes: TenantIndexes | None = None,
                 variants: EmbedderVariants | None = None, fulltext: FullTextSearch | None = None) -> None:
        self.settings = settings
        #: which embedder made each document's vectors; None: a store that records none (the fakes)
        self.variants = variants
        self.urls = urls  # None: the blob store's own presigned GETs
        self.documents = documents
        self.chats = chats
        self.query_log = query_log
        self.s3_objects = s3_objects
        self.sweeps = sweeps  # the archive job's reads across tenants (querio.archive)
        self.parts = parts  # page-range parts of large PDFs (querio.ingest.parts)
        self.vectors = vectors
        self.blobs = blobs
        self.cache = cache
        #: one-call hybrid search (both legs and the fusion in the engine); None: fuse here
        self.search_engine = search
        self.indexes = indexes
        #: the full-text leg of ``_fuse_here`` (issue 15: OpenSearch); None: PostgreSQL's
        self.fulltext = fulltext
        self.analytics = AnalyticsWriter(query_log, documents)
        self._embedder_factory = embedder
        self._answerer_factory = answerer
        self._indexing: set[str] = set()
        self._indexing_lock = threading.Lock()
        #: tenant -> (read at, corpus version): see ``_corpus_version``
        self._versions: dict[str, tuple[float, str]] = {}
        self.pipeline = IngestPipeline(settings, documents, vectors, blobs, lambda: self.embedder,
                                       indexes=[fulltext] if isinstance(fulltext, IndexSync) else [])

    # lazily built: health checks and document listing never load the model
    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder_factory()

    @cached_property
    def answerer(self) -> AnswerGenerator:
        return self._answerer_factory(self.embedder)

    @cached_property
    def _embedding_pool(self) -> ThreadPoolExecutor:
        """Query embeddings computed beside the search engine's reads (``_retrieve``)."""
        return ThreadPoolExecutor(max_workers=4, thread_name_prefix="querio-embed")

    # --- documents -----------------------------------------------------------------------------

    def ingest(self, principal: Principal, data: bytes, filename: str, *, tags: Sequence[str] = (),
               progress: Callable[[str], None] | None = None) -> IngestOutcome:
        """Ingest one PDF for the caller's tenant. Bad files give a ``failed`` outcome, not an error.
        A document whose vectors the serving store did not take stays ``indexing`` (see
        ``sync_pending``)."""
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

    def delete_document(self, principal: Principal, document_id: uuid.UUID, *, purge: bool = True,
                        delete_blob: bool = True) -> Document:
        """Soft-delete (hidden from every read at once), then, unless ``purge=False`` (the
        archive function's retention path), remove the blob (see ``purge``), the chunks and
        the vectors."""
        doc = self.documents.soft_delete(principal.tenant_id, document_id)
        self._bump_generation(principal.tenant_id)
        if purge:
            self.purge(principal.tenant_id, doc, delete_blob=delete_blob)
        return doc

    def purge(self, tenant_id: str, doc: Document, *, delete_blob: bool = True) -> None:
        """Remove the document's vectors, blob and row. The blob goes only while it still holds
        this document's bytes and no other live document keeps its bytes there: an S3 key that
        was overwritten since (its new version may not even be ingested yet) stays intact."""
        if not self.vectors.colocated:
            self.vectors.delete_document(tenant_id, doc.id)
        elif isinstance(self.vectors, IndexSync):  # an external index mirrors the chunk rows
            self.vectors.document_purged(tenant_id, doc.id)
        if isinstance(self.fulltext, IndexSync):  # OpenSearch mirrors the chunk rows too
            self.fulltext.document_purged(tenant_id, doc.id)
        if delete_blob and doc.storage_path and self._owns_blob(doc):
            self.blobs.delete(doc.storage_path)
        self.documents.purge_document(tenant_id, doc.id)

    def _owns_blob(self, doc: Document) -> bool:
        path = doc.storage_path or ""
        if self.s3_objects.blob_shared(doc.tenant_id, path, doc.id):
            return False
        try:
            info = self.blobs.head(path)
        except NotFound:
            return False
        if "sha256" in info.metadata:  # written by Querio (``put``, the archive copy)
            return info.metadata["sha256"] == doc.content_sha256
        # a presigned upload: its ETag, recorded at ingest (rows from before it was recorded: yes)
        return doc.s3_etag is None or info.etag == doc.s3_etag

    def reprocess(self, principal: Principal, document_id: uuid.UUID) -> IngestOutcome:
        outcome = self.pipeline.reprocess(principal.tenant_id, document_id)
        self._sync_vectors(principal.tenant_id, outcome, replaced=True)
        self._bump_generation(principal.tenant_id)
        return outcome

    def reembed(self, *, tenant_id: str | None, progress: Callable[[ReembedStep], None] | None = None,
                limit: int | None = None) -> ReembedReport:
        """Embed again, with the running embedder, the documents of ``tenant_id`` (``None``: every
        tenant) that another variant embedded (see :mod:`querio.reembed`)."""
        if self.variants is None:
            raise ValidationFailed("this document store records no embedder variants; nothing to re-embed")
        report = reembed(self.documents, self.variants, self.vectors, self.embedder, tenant_id=tenant_id,
                         progress=progress, limit=limit)
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
            session = self.chats.create_chat_session(tenant, principal.user_id, request.message[:80])
        else:
            session = self.chats.get_chat_session(tenant, request.session_id)
        history = self.chats.chat_history(tenant, session.id, limit=20)
        self.chats.add_chat_message(tenant, session.id, ChatRole.USER, request.message)
        # Retrieval sees the last user turn too, so follow-ups ("and on Windows?") keep context.
        previous = next((m.content for m in reversed(history) if m.role == ChatRole.USER), "")
        retrieval_query = f"{previous} {request.message}".strip() if previous else request.message
        hits = self._retrieve(tenant, retrieval_query, request.k, request.filters, self.settings.hybrid_alpha)
        answer = self._answer(tenant, request.message, hits, history)
        message = self.chats.add_chat_message(
            tenant, session.id, ChatRole.ASSISTANT, answer.answer,
            source_chunks=[h.chunk_id for h in answer.sources],
            metadata={"mode": answer.mode, "citations": [c.model_dump(mode="json") for c in answer.citations]})
        return ChatReply(session_id=session.id, message=message, answer=answer)

    def list_chat_sessions(self, principal: Principal, *, limit: int = 50, offset: int = 0) -> list[ChatSession]:
        return self.chats.list_chat_sessions(principal.tenant_id, limit=limit, offset=offset)

    def chat_history(self, principal: Principal, session_id: uuid.UUID) -> list[ChatMessage]:
        self.chats.get_chat_session(principal.tenant_id, session_id)  # NotFound for others' sessions
        return self.chats.chat_history(principal.tenant_id, session_id)

    def delete_chat_session(self, principal: Principal, session_id: uuid.UUID) -> None:
        self.chats.delete_chat_session(principal.tenant_id, session_id)

    def stats(self, principal: Principal) -> TenantStats:
        self.analytics.flush()  # this process's own queries are counted
        return self._usage_stats(principal.tenant_id, self.query_log.stats(principal.tenant_id))

    def health(self) -> dict[str, object]:
        """``status`` is ``degraded`` when the database or the cache does not answer (a stalled or
        refusing Redis included); ``cache_status`` says which. Requests still work without the
        cache (it fails open), so only ``database`` decides whether the service can answer."""
        db = self.documents.healthy()
        cache_ok = self.cache.healthy()
        return {"status": "ok" if db and cache_ok else "degraded", "database": db, "cache": self.cache.name,
                "cache_status": "ok" if cache_ok else "degraded", "vector_backend": self.vectors.name}

    # --- internals -----------------------------------------------------------------------------

    def _alpha(self, request: SearchRequest) -> float:
        if request.mode == SearchMode.VECTOR:
            return 1.0
        if request.mode == SearchMode.TEXT:
            return 0.0
        return self.settings.hybrid_alpha if request.alpha is None else request.alpha

    def _retrieve(self, tenant: str, query: str, k: int, filters: SearchFilters, alpha: float) -> list[SearchHit]:
        n = k * self.settings.candidate_multiplier
        # with one engine, the query is embedded on a worker while this thread checks the corpus's
        # embedder and the engine reads its full-text leg (10K tenant: embedding ~4 ms, the check
        # ~0.7 ms and the BM25 read ~1.9 ms overlap)
        pending = self._embedding_pool.submit(self._query_vector, query).result \
            if alpha > 0 and self.search_engine is not None else None
        if alpha > 0:
            self._check_embedder(tenant)  # a mismatch raises here; a pending embedding is dropped
        if self.search_engine is not None:  # one call: both legs, the fusion and the fetch
            ranked = self.search_engine.hybrid(tenant, query, pending, k=k, filters=filters, alpha=alpha,
                                               rrf_k=self.settings.rrf_k, candidates=n)
        else:
            vector = self._query_vector(query) if alpha > 0 else None
            ranked = self._fuse_here(tenant, query, vector, k, n, filters, alpha)
        return [SearchHit(
            chunk_id=c.id, document_id=c.document_id, filename=c.filename, title=c.title,
            page=page_of(c.content, c.page_number, query), page_start=c.page_number, page_end=c.page_end,
            chunk_index=c.chunk_index, score=round(r.score, 6), vector_rank=r.vector_rank,
            text_rank=r.text_rank, snippet=make_snippet(c.content, query), content=c.content)
            for r in ranked for c in (r.chunk,)]

    def _fuse_here(self, tenant: str, query: str, vector: np.ndarray | None, k: int, n: int,
                   filters: SearchFilters, alpha: float) -> list[RankedChunk]:
        """The two legs from their own stores (pgvector or a vector service; PostgreSQL or OpenSearch
        full text), fused here with ``rrf_fuse``; the chunks are read from PostgreSQL."""
        vector_refs = self.vectors.query(tenant, vector, n, filters) if vector is not None else []
        search_text = self.fulltext.search if self.fulltext is not None else self.documents.fulltext_search
        text_refs = search_text(tenant, query, n, filters) if alpha < 1 else []
        fused = rrf_fuse(vector_refs, text_refs, alpha=alpha, rrf_k=self.settings.rrf_k, limit=k)
        chunks = self.documents.fetch_chunks(tenant, [f.chunk_id for f in fused])
        # a chunk deleted between the reads, or a vector with no chunk row, is skipped
        return [RankedChunk(chunks[f.chunk_id], f.score, f.vector_rank, f.text_rank)
                for f in fused if f.chunk_id in chunks]

    def _check_embedder(self, tenant: str) -> None:
        """Refuse a vector search of a corpus embedded by another variant: its neighbours would be
        silently wrong. Full-text search still works; ``querio reembed`` converts the corpus."""
        running = self.embedder.variant
        found = self.variants.embedder_variants(tenant, running) if self.variants is not None else {}
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
                                content=h.content or "", page_number=h.page_start or h.page,
                                page_end=h.page_end, filename=h.filename, title=h.title) for h in hits]
        # Sources are what the answer cites, numbered as it cites them; each citation names the
        # page of the quoted (or generated) sentence.
        text, sources, citations = cited_sources(self.answerer.answer(question, passages, history), hits)
        mode: Literal["extractive", "generative"] = (
            "generative" if self.answerer.mode == "generative" else "extractive")
        return Answer(answer=text, mode=mode, citations=citations, sources=sources, model=self.answerer.model)

    def _after_query(self, principal: Principal, query: str, hits: list[SearchHit], took_ms: float) -> None:
        """Popular-query tally now (one cache call); the analytics row and the documents' access
        times are queued for the background writer (``querio.analytics``), off the request path."""
        self._track_query(principal, query)
        self.analytics.submit(
            QueryRecord(tenant_id=principal.tenant_id, user_id=principal.user_id, query=query,
                        response_time_ms=int(took_ms), chunks_retrieved=len(hits), success=bool(hits),
                        created_at=utcnow()),
            list({h.document_id for h in hits}))

    def close(self) -> None:
        """Write queued analytics, then close the database pool (tests, the CLI, the bench)."""
        self.analytics.close()
        if "_embedding_pool" in self.__dict__:
            self._embedding_pool.shutdown(wait=True)
        self.documents.close()

    def maintain_indexes(self, tenant: str, *, background: bool = True) -> None:
        """Give the tenant its own vector index once it is big enough (``TenantIndexes``), in a
        background thread by default (the build takes seconds to minutes; searches go on with
        the exact or shared-index plan meanwhile). One build per tenant at a time."""
        if self.indexes is None or not self.indexes.index_due(tenant):
            return
        with self._indexing_lock:
            if tenant in self._indexing:
                return
            self._indexing.add(tenant)

        def build() -> None:
            try:
                assert self.indexes is not None
                self.indexes.ensure_tenant_index(tenant)
            except Exception:  # a failed build leaves the tenant on its current plan
                log.warning("could not build the vector index of tenant %r", tenant, exc_info=True)
            finally:
                with self._indexing_lock:
                    self._indexing.discard(tenant)

        if background:
            threading.Thread(target=build, name=f"querio-index-{tenant}", daemon=True).start()
        else:
            build()

    def _sync_vectors(self, tenant: str, outcome: IngestOutcome, *, replaced: bool = False) -> None:
        """Copy a just-stored document's vectors to an external index (Pinecone), after the
        commit (``replaced``: a reprocess, whose old records go). When that index serves
        queries the document was stored ``indexing`` and becomes ``completed`` only once the
        copy succeeded; a failed copy leaves it ``indexing`` (``outcome.document`` shows it)."""
        if outcome.status == "ingested" and outcome.document is not None and self._index_syncs():
            outcome.document = self._sync_document(tenant, outcome.document, replaced=replaced)

    def _index_syncs(self) -> list[IndexSync]:
        """The external indexes kept in step after each commit: Pinecone, OpenSearch (issue 15)."""
        found: list[IndexSync] = []
        for candidate in (self.vectors, self.fulltext):
            if isinstance(candidate, IndexSync):
                found.append(candidate)
        return found

    def _sync_document(self, tenant: str, doc: Document, *, replaced: bool = False) -> Document:
        # every index is tried, even after one failed: each write is idempotent
        synced = all([s.document_stored(tenant, doc.id, replaced=replaced) for s in self._index_syncs()])
        if doc.processing_status != DocumentStatus.INDEXING:
            return doc  # the external index only shadows: pgvector serves, nothing waits
        if synced:
            done = self.documents.finish_indexing(tenant, doc.id)
            if done is not None:
                self._bump_generation(tenant)
                return done
            return doc
        emit("DocumentsPendingIndex")
        log.warning("document %s (tenant %s) stays indexing until its chunks reach %s", doc.id, tenant,
                    " and ".join(getattr(s, "name", type(s).__name__) for s in self._index_syncs()))
        return doc

    def sync_pending(self, doc: Document) -> Document:
        """Retry the vector copy of an ``indexing`` document (any tenant; the archive schedule
        sweeps them, the S3 ingest path retries its message); returns the document as it is now."""
        if not self._index_syncs() or doc.processing_status != DocumentStatus.INDEXING:
            return doc
        return self._sync_document(doc.tenant_id, doc, replaced=True)

    def _generation_key(self, tenant: str) -> str:
        return f"gen:{tenant}"

    def _bump_generation(self, tenant: str) -> None:
        self._versions.pop(tenant, None)
        self.cache.incr(self._generation_key(tenant))
        self.maintain_indexes(tenant)

    def _result_key(self, tenant: str, kind: str, payload: dict[str, object]) -> str | None:
        """Key of a cached result, or ``None`` when caching must be skipped.

        Two generations are in the key. The cache's ``gen:`` counter is bumped by every upload,
        delete and reprocess; a bump can fail while Redis is down, so the key also carries the
        corpus version read from PostgreSQL (``DocumentStore.corpus_version``), which changes in
        the same transaction as the corpus itself. The version is read at most once per
        ``corpus_version_ttl_s`` per tenant and process (not per request), and forgotten at once
        by this process's own writes: a stale result is never served after a write made here,
        and after another process's write only if Redis also lost that write's bump, for at
        most the TTL.
        """
        if not self.settings.result_cache:
            return None
        generation = self.cache.get_int(self._generation_key(tenant))
        if generation < 0:
            return None
        version = self._corpus_version(tenant)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"res:{tenant}:{generation}:{version}:{kind}:{digest}"

    def _corpus_version(self, tenant: str) -> str:
        now = time.monotonic()
        cached = self._versions.get(tenant)
        if cached is not None and now - cached[0] < self.settings.corpus_version_ttl_s:
            return cached[1]
        version = self.documents.corpus_version(tenant)
        self._versions[tenant] = (now, version)
        return version

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
        becomes part of the key: it is sanitised and carried as required, signed object metadata
        (``x-amz-meta-filename``, percent-encoded UTF-8); the upload's ObjectCreated
        notification starts the ingest, which reads it back."""
        from querio.errors import PayloadTooLarge, ValidationFailed
        from querio.ingest.events import upload_key

        if content_length is not None:
            if content_length <= 0:
                raise ValidationFailed("content_length must be positive")
            if content_length > self.settings.max_file_bytes:
                raise PayloadTooLarge(
                    f"the file is {content_length:,} bytes; the limit is {self.settings.max_file_bytes:,}",
                    details={"max_bytes": self.settings.max_file_bytes})
        key = upload_key(principal.tenant_id, f"{uuid.uuid4()}.pdf")
        name = display_filename(filename or "document.pdf")
        # the name rides along as signed object metadata: the ingest lists and cites the document by it
        signed = self.blobs.presign_put(key, expires_s=self.UPLOAD_URL_EXPIRES_S, content_type="application/pdf",
                                        content_length=content_length,
                                        metadata={FILENAME_METADATA: encode_filename(name)})
        return {"url": signed["url"], "key": key, "expires_in": self.UPLOAD_URL_EXPIRES_S,
                "headers": signed["headers"], "filename": name}

    def create_download_url(self, principal: Principal, document_id: uuid.UUID) -> dict[str, object]:
        """A short-lived download link (S3 presigned or CloudFront signed, per ``urls``); ``Conflict``
        while the blob is archived and not restored."""
        from querio.errors import Conflict

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
        sign = self.urls.signed_get if self.urls is not None else self.blobs.presign_get
        url = sign(doc.storage_path, expires_s=self.DOWNLOAD_URL_EXPIRES_S, filename=doc.filename)
        return {"url": url, "expires_in": self.DOWNLOAD_URL_EXPIRES_S}

    def restore_document(self, principal: Principal, document_id: uuid.UUID) -> Document:
        """Start a restore of an archived document (idempotent; a no-op when not archived)."""
        doc = self.documents.get_document(principal.tenant_id, document_id, touch=True)
        if doc.storage_class != "STANDARD" and doc.storage_path:
            self.blobs.restore(doc.storage_path, days=self.RESTORE_DAYS)
        return doc

    def ingest_s3_object(self, tenant_id: str, bucket: str, key: str, *, version: S3Version | None = None,
                         enqueue: Callable[[Sequence[dict[str, object]]], None] | None = None) -> IngestOutcome:
        """Ingest an uploaded object for the tenant named by its key; the document points at
        the object itself (no copy). Bad PDFs give a ``failed`` outcome; dependency failures
        raise ``TransientError`` (so the queue retries). Overwrite semantics (README, "Overwrites
        and event order"):

        * one key holds one live document: new bytes under a known key replace its document
          (the old one is retired in the transaction that completes the new one);
        * an event older than one already applied for the key (``sequencer``), or naming an
          ETag the object no longer has, is ``skipped`` (stale), as is one for bytes the key's
          document already holds (a replay, a re-PUT of the same bytes, the archive's copy to
          GLACIER: recognised by eTag or by the ``sha256`` metadata, without a GetObject), and
          one for an object deleted before its ingest ran;
        * identical bytes under a *different* key are a ``duplicate`` of the document that
          holds them, whose redundant object is deleted (its ObjectRemoved then matches no
          document); if that key held a document before, it is retired (its bytes are gone).

        With ``enqueue``, a PDF of more than ``pages_per_part`` pages is split into page-range
        work items instead (see :mod:`querio.ingest.parts`); the outcome is ``in_progress``."""
        from querio.errors import PermanentIngestError, StaleObject
        from querio.ingest import parts
        from querio.ingest.pdf import count_pages

        version = version or S3Version()
        if version.sequencer and not self.s3_objects.record_s3_event(
                tenant_id, bucket, key, sequencer=version.sequencer, event_name=version.event_name,
                etag=version.etag, version_id=version.version_id):
            return _skipped("a later event of this key was already applied (stale or replayed event)")
        current = self.s3_objects.find_by_s3_key(tenant_id, bucket, key)
        if current is not None and self._holds_current_bytes(current, key, version.etag):
            return self._unchanged(current, bucket, key, version)
        try:
            data, info = self.blobs.read(key, if_match=version.etag)
        except NotFound:
            return _skipped("the object no longer exists (deleted before its ingest ran)")
        except StaleObject:
            return _skipped("the object was overwritten after this event; the newer event ingests it")
        if current is not None and current.content_sha256 == hashlib.sha256(data).hexdigest():
            return self._unchanged(current, bucket, key, version.model_copy(update={"etag": info.etag}))
        s3 = S3Binding(bucket=bucket, key=key, sequencer=version.sequencer, etag=info.etag or version.etag)
        filename = display_filename(decode_filename(info.metadata) or key.rsplit("/", 1)[-1])
        page_count = 0
        if enqueue is not None:
            try:
                page_count = count_pages(data, max_pages=self.settings.max_pages)
            except PermanentIngestError:
                page_count = 0  # the pipeline records the failure with its code
        if page_count > self.settings.pages_per_part and enqueue is not None:
            outcome = parts.split_upload(self, tenant_id, s3, filename, data, page_count, enqueue)
        else:
            outcome = self.pipeline.ingest(tenant_id, data, filename, uploaded_by=self.S3_UPLOAD_USER,
                                           storage_key=key, s3=s3)
        doc = outcome.document
        self._sync_vectors(tenant_id, outcome)
        if outcome.status == "duplicate" and doc is not None and doc.storage_path != key:
            if current is not None:  # the key's previous bytes are gone: so is its document
                self._delete_quietly(current, delete_blob=False)
            self.blobs.delete(key)
        for retired in self.s3_objects.retired_by_key(tenant_id, bucket, key):
            self.purge(tenant_id, retired)  # an overwrite's predecessor; the key keeps its new bytes
        if outcome.status in ("ingested", "failed"):
            self._bump_generation(tenant_id)
        self._require_indexed(outcome.document)
        return outcome

    def _holds_current_bytes(self, doc: Document, key: str, etag: str | None) -> bool:
        """Whether the key's document already holds the object's current bytes, without a
        GetObject: the event's eTag is the one recorded, or a HEAD shows that ETag or the
        ``sha256`` metadata Querio writes (the archive's copy adds it)."""
        if doc.storage_path != key:
            return False
        if etag and doc.s3_etag and etag == doc.s3_etag:
            return True
        try:
            info = self.blobs.head(key)
        except NotFound:
            return False
        return info.metadata.get("sha256") == doc.content_sha256 or bool(info.etag and info.etag == doc.s3_etag)

    def _unchanged(self, doc: Document, bucket: str, key: str, version: S3Version) -> IngestOutcome:
        self.s3_objects.set_s3_location(doc.tenant_id, doc.id, bucket, key, sequencer=version.sequencer,
                                       etag=version.etag)
        if doc.processing_status == DocumentStatus.INDEXING:  # a retried message re-syncs its vectors
            doc = self.sync_pending(doc)
            self._require_indexed(doc)
            return IngestOutcome(status="ingested", document=doc, reason="vectors copied on a retry",
                                 pages=doc.page_count or 0, chunks=doc.chunk_count)
        return IngestOutcome(status="skipped", document=doc, reason="the key's document already holds these bytes")

    def _require_indexed(self, doc: Document | None) -> None:
        """On the queue path a document left ``indexing`` retries its message (a dependency
        outage: the serving vector store did not take its vectors)."""
        from querio.errors import TransientError

        if doc is not None and doc.processing_status == DocumentStatus.INDEXING:
            names = " and ".join(getattr(s, "name", "?") for s in self._index_syncs() if s.serves_external)
            raise TransientError(f"document {doc.id} is stored but {names} lacks its chunks; retried")

    def _delete_quietly(self, doc: Document, *, delete_blob: bool) -> Document | None:
        try:
            return self.delete_document(Principal(tenant_id=doc.tenant_id, user_id=self.S3_UPLOAD_USER), doc.id,
                                        delete_blob=delete_blob)
        except NotFound:
            return None

    def ingest_part(self, item: IngestPart) -> IngestOutcome:
        """One page-range part of a large PDF (see :mod:`querio.ingest.parts`)."""
        from querio.ingest import parts

        outcome = parts.ingest_part(self, item)
        if outcome.document is None and outcome.status == "duplicate":  # a redelivered last part
            with contextlib.suppress(NotFound):
                outcome.document = self.sync_pending(self.documents.get_document(item.tenant_id, item.document_id))
        self._sync_vectors(item.tenant_id, outcome)
        if outcome.document is not None and outcome.document.s3_key:
            for retired in self.s3_objects.retired_by_key(item.tenant_id, item.bucket, outcome.document.s3_key):
                self.purge(item.tenant_id, retired)
        if outcome.status in ("ingested", "failed"):
            self._bump_generation(item.tenant_id)
        self._require_indexed(outcome.document)
        return outcome

    def delete_s3_object_document(self, tenant_id: str, bucket: str, key: str, *,
                                  version: S3Version | None = None) -> Document | None:
        """ObjectRemoved: delete (and purge) the document the key holds now; ``None`` when
        there is none (already deleted, a duplicate's object, never ingested), when the event
        is older than the key's current object (stale), or when the key still holds the
        document's bytes (a HEAD: in a versioned bucket, deleting a noncurrent version by id
        also sends ObjectRemoved): idempotent. The object is gone already, and a newer one may
        be at the key: the blob is never deleted here."""
        version = version or S3Version()
        if version.sequencer and not self.s3_objects.record_s3_event(
                tenant_id, bucket, key, sequencer=version.sequencer, event_name=version.event_name,
                etag=version.etag, version_id=version.version_id):
            return None
        removed = None
        for _ in range(10):  # normally one; a key never holds many
            doc = self.s3_objects.find_by_s3_key(tenant_id, bucket, key)
            if doc is None or (version.sequencer
                               and sequencer_key(doc.s3_sequencer) > sequencer_key(version.sequencer)):
                break  # the key holds a newer object than this remove is about
            if self._holds_current_bytes(doc, key, None):
                break  # the object is still there (a noncurrent version was deleted, or it came back)
            removed = self._delete_quietly(doc, delete_blob=False) or removed
        return removed

    def archive_document(self, doc: Document) -> Document | None:
        """Move one idle document's blob to GLACIER and record it (archive job; any tenant)."""
        if not doc.storage_path:
            return None
        storage_class = self.blobs.archive(doc.storage_path, sha256=doc.content_sha256)
        return self.sweeps.mark_archived(doc.tenant_id, doc.id, storage_class)

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

