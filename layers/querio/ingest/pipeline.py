"""The ingest pipeline: bytes → claimed document → blob → parse → chunk → embed → store.

Status moves ``pending → processing → completed | failed`` on the document row.
- A :class:`~querio.errors.PermanentIngestError` (bad file) marks the document failed with its
  code and message and returns a ``failed`` outcome: the caller's batch goes on.
- A :class:`~querio.errors.TransientError` (database, blob store, embedder unavailable) is
  re-raised after a best-effort ``failed`` mark, so a queue consumer can retry; a retry
  re-claims the row.
- Any other error (a bug, a library choking on one file) is a permanent failure of that one
  document, recorded with its type and message (code ``internal_error`` unless it is a
  ``QuerioError`` with its own): retrying the same bytes would fail the same way.
- With an external vector store serving queries (Pinecone), a stored document is ``indexing``
  until the service has copied its vectors there (see ``QuerioService._sync_vectors``).
- Identical bytes for the same tenant are one document (sha256, enforced by a unique index).
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from pathlib import PurePath

from querio.config import Settings
from querio.errors import EmptyFile, FileTooLarge, PermanentIngestError, QuerioError, TransientError
from querio.ingest.chunking import TITLE_MAX_TOKENS, chunk_pages
from querio.ingest.pdf import parse_pdf
from querio.models import (
    ChunkDraft,
    Document,
    DocumentStatus,
    IngestOutcome,
    NewDocument,
    Page,
    ParsedPdf,
    S3Binding,
    clean_tags,
)
from querio.ports import BlobStore, DocumentStore, Embedder, Vector, VectorStore
from querio.text import repair_surrogates
from querio.vectors.sync import IndexSync

#: statuses of a document whose chunks are stored: the same bytes again are a duplicate
STORED = (DocumentStatus.COMPLETED, DocumentStatus.INDEXING)

log = logging.getLogger(__name__)

#: A ``processing`` row untouched this long belongs to a crashed worker and may be retaken.
#: 15 min is the Lambda maximum timeout: no live invocation can hold a row longer.
STALE_PROCESSING_S = 15 * 60


def display_filename(name: str) -> str:
    """The last path component of a user-supplied name, printable, ≤ 255 chars: NFC, without
    control, format (bidi overrides, zero-width) or private-use characters, any run of
    whitespace (tabs, no-break or ideographic spaces, line separators) as one space.

    It is only ever displayed or stored as data: blob keys never contain it.
    """
    base = PurePath(unicodedata.normalize("NFC", repair_surrogates(name)).replace("\\", "/")).name or "document.pdf"
    cleaned = " ".join("".join(ch for ch in base if unicodedata.category(ch)[0] != "C").split())
    return (cleaned if cleaned.strip(".") else "document.pdf")[:255]


def blob_key(tenant_id: str, document_id: uuid.UUID) -> str:
    """Hash-partitioned key as in the seed's Option C (``ab/cd/abcd….pdf``), per tenant."""
    h = document_id.hex
    return f"tenants/{tenant_id}/documents/{h[:2]}/{h[2:4]}/{h}.pdf"


def embedding_context(title: str | None, filename: str) -> str:
    """The line put before every chunk's text when it is embedded (never stored in ``content``).

    Why: a chunk of a manual rarely names its subject ("set the terminal…" does not say
    gnuplot). Prefixing the document title lifted vector-only recall@5 on the eval set from
    0.854 to 0.917 and recall@10 from 0.938 to 0.979 (section headings too: 0.896 / 0.958).
    """
    text = (title or PurePath(filename.replace("\\", "/")).stem or "").strip()
    return " ".join(text.split())[:200]


def embedding_texts(embedder: Embedder, context: str, contents: Sequence[str],
                    sections: Sequence[str | None] | None = None) -> list[str]:
    """What is embedded for each chunk: the ``context`` line, then the chunk's section title
    unless a line of the chunk starts with it, then the chunk's text.

    Why the section: a chunk cut from the middle of a section rarely names its topic ("Integer
    constants are interpreted via strtoll()..." under "Constants"); carried as context, the
    title makes it embed as that topic, as many RAG chunkers do. Measured on the eval set with
    the heading cuts of ``ingest.chunking`` (vector-only, qint8): recall@10 0.979 -> 1.0 and
    MRR@10 0.83 -> 0.86. A title is cut to ``TITLE_MAX_TOKENS`` word pieces (whole words); the
    chunker kept room for it (``carry_titles``), so no chunk text is truncated by the model.
    """
    prefix = f"{context}\n" if context else ""
    if sections is None:
        return [prefix + c for c in contents]
    titles = _fit_titles(embedder, {s for s in sections if s})
    out = []
    for content, section in zip(contents, sections, strict=True):
        title = titles.get(section or "")
        # not when a line of the chunk starts with it, or the chunk is the start of it (a title
        # cut by a tiny cap): the chunker kept no room then (chunking._reserve_titles)
        carried = bool(title) and f"\n{section}" not in f"\n{content}" \
            and not (section or "").startswith(content.split("\n", 1)[0])
        out.append(prefix + (f"{title}\n" if carried else "") + content)
    return out


def _fit_titles(embedder: Embedder, titles: set[str]) -> dict[str, str]:
    """Each title cut to at most ``TITLE_MAX_TOKENS`` word pieces by dropping words from its end
    (one ``count_tokens`` batch per round; titles are short, so rarely more than one)."""
    fitted: dict[str, str] = {}
    pending = {t: t for t in titles}
    while pending:
        ordered = sorted(pending)
        counts = embedder.count_tokens([pending[t] for t in ordered])
        nxt = {}
        for t, n in zip(ordered, counts, strict=True):
            words = pending[t].split()
            if n <= TITLE_MAX_TOKENS:
                fitted[t] = pending[t]
            elif len(words) > 1:
                nxt[t] = " ".join(words[:-1])
            else:
                fitted[t] = ""  # one word longer than the room: no title
        pending = nxt
    return fitted


def embed_chunks(embedder: Embedder, context: str, contents: Sequence[str],
                 sections: Sequence[str | None] | None = None) -> Vector:
    """The vectors of chunk texts as stored (see :func:`embedding_texts`; ingest and ``querio
    reembed`` both come here, so their vectors are the same)."""
    return embedder.embed_documents(embedding_texts(embedder, context, contents, sections))


def chunk_and_embed(pages: Sequence[Page], *, context: str, settings: Settings,
                    embedder: Embedder) -> tuple[list[ChunkDraft], Vector]:
    """Page-aware chunks and their embeddings, shape ``(len(chunks), embedder.dimension)``.

    The chunker's token budget leaves room for ``context`` so that context + chunk still fit
    the model's window (256 word pieces for all-MiniLM-L6-v2) and no chunk text is truncated.
    """
    chunks = chunk_for(pages, context=context, settings=settings, embedder=embedder)
    return chunks, embed_chunks(embedder, context, [c.content for c in chunks], [c.section for c in chunks])


def chunk_for(pages: Sequence[Page], *, context: str, settings: Settings, embedder: Embedder) -> list[ChunkDraft]:
    """Chunks sized so that ``context`` + newline + section title + newline + chunk fit the
    model's window (see :func:`embedding_texts`)."""
    prefix_tokens = embedder.count_tokens([f"{context}\n"])[0] if context else 0
    budget = max(embedder.max_tokens - prefix_tokens, embedder.max_tokens // 2)
    return chunk_pages(pages, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                       count_tokens=embedder.count_tokens, max_tokens=budget, carry_titles=True)


def parse_chunk_embed(data: bytes, *, filename: str, settings: Settings,
                      embedder: Embedder) -> tuple[ParsedPdf, list[ChunkDraft], Vector]:
    """Parse the whole PDF, then chunk and embed it.

    Why not parse the next page range while the current one embeds (tried for issue 13): running
    headers and footers (``ingest.boilerplate``) and hyphenated compounds are learnt from the whole
    document, so per-range parsing changed the text; and on 2 cores the parse thread measured no
    net gain once ONNX Runtime stopped spinning (the README's Performance section).
    """
    parsed = parse_pdf(data, max_pages=settings.max_pages)
    chunks, vectors = chunk_and_embed(parsed.pages, context=embedding_context(parsed.info.title, filename),
                                      settings=settings, embedder=embedder)
    return parsed, chunks, vectors


class IngestPipeline:
    def __init__(self, settings: Settings, documents: DocumentStore, vectors: VectorStore, blobs: BlobStore,
                 embedder: Callable[[], Embedder], *, indexes: Sequence[IndexSync] = ()) -> None:
        self._s = settings
        self._docs = documents
        self._vectors = vectors
        self._blobs = blobs
        self._embedder = embedder
        #: external indexes besides the vector store (OpenSearch full text, issue 15)
        self._indexes = tuple(indexes)

    def ingest(self, tenant_id: str, data: bytes, filename: str, *, tags: Sequence[str] = (),
               uploaded_by: str | None = None, progress: Callable[[str], None] | None = None,
               storage_key: str | None = None, s3: S3Binding | None = None) -> IngestOutcome:
        """``storage_key``: the bytes are already stored under this key (an S3 upload), so the
        document points at it instead of a copy under :func:`blob_key`; ``s3``: the S3 object
        and event version it came from."""
        started = time.perf_counter()
        name = display_filename(filename)
        sha = hashlib.sha256(data).hexdigest()
        doc_id = uuid.uuid4()
        new = NewDocument(
            id=doc_id, tenant_id=tenant_id, filename=name,
            original_filename=(repair_surrogates(filename).replace("\x00", "") or name)[:255],
            file_size=len(data), content_sha256=sha, storage_type=self._blobs.storage_type,
            storage_path=storage_key or blob_key(tenant_id, doc_id), tags=clean_tags(list(tags)),
            uploaded_by=uploaded_by, s3=s3,
        )
        doc, created = self._docs.claim_document(new)
        if not created and doc.processing_status in STORED:
            return IngestOutcome(status="duplicate", document=doc, reason="identical content already ingested",
                                 pages=doc.page_count or 0, chunks=doc.chunk_count)
        claimed = self._docs.try_start_processing(tenant_id, doc.id, stale_after_s=STALE_PROCESSING_S)
        if claimed is None:
            return IngestOutcome(status="in_progress", document=doc, reason="another worker is ingesting it")
        return self._process(claimed.id, tenant_id, data, claimed.storage_path or new.storage_path, started,
                             claimed.filename,
                             progress)

    def reprocess(self, tenant_id: str, document_id: uuid.UUID) -> IngestOutcome:
        started = time.perf_counter()
        doc = self._docs.reset_for_reprocess(tenant_id, document_id)
        claimed = self._docs.try_start_processing(tenant_id, doc.id, stale_after_s=STALE_PROCESSING_S)
        if claimed is None:
            return IngestOutcome(status="in_progress", document=doc, reason="another worker is ingesting it")
        data = self._blobs.get(claimed.storage_path or "")
        return self._process(claimed.id, tenant_id, data, claimed.storage_path or "", started, claimed.filename,
                             None)

    def _process(self, document_id: uuid.UUID, tenant_id: str, data: bytes, key: str, started: float, filename: str,
                 progress: Callable[[str], None] | None) -> IngestOutcome:
        say = progress or (lambda _msg: None)
        try:
            if not data.strip():
                raise EmptyFile("the file is empty (0 bytes of content)")
            if len(data) > self._s.max_file_bytes:
                raise FileTooLarge(
                    f"the file is {len(data):,} bytes; the limit is {self._s.max_file_bytes:,} "
                    "(QUERIO_MAX_FILE_BYTES)")
            if not self._blobs.exists(key):
                self._blobs.put(key, data, metadata={"tenant": tenant_id, "document-id": str(document_id)})
            say("parsing, chunking and embedding")
            parsed, chunks, vectors = parse_chunk_embed(data, filename=filename, settings=self._s,
                                                        embedder=self._embedder())
            info = {
                "embedder_variant": self._embedder().variant,
                "page_count": parsed.page_count, "word_count": parsed.word_count,
                "empty_page_count": len(parsed.empty_pages), "title": parsed.info.title,
                "author": parsed.info.author, "language": parsed.info.language,
                "created_date": parsed.info.created_date,
            }
            say("storing")
            doc = self._docs.complete_document(
                tenant_id, document_id, chunks=chunks,
                embeddings=vectors if self._vectors.colocated else None, info=info, indexing=self.indexing)
            # An external vector store is written after the commit; issue 5's reconciler
            # repairs a crash between the two (chunk rows without vectors).
        except PermanentIngestError as exc:
            doc = self._docs.mark_failed(tenant_id, document_id, code=exc.code, message=exc.message)
            return IngestOutcome(status="failed", document=doc, reason=exc.message, error_code=exc.code,
                                 seconds=round(time.perf_counter() - started, 3))
        except TransientError as exc:
            self._mark_failed_quietly(tenant_id, document_id, exc)
            raise
        except Exception as exc:  # one bad document is not a retry loop (see the module docstring)
            log.exception("ingest of document %s failed unexpectedly", document_id)
            code, message = failure_of(exc)
            return IngestOutcome(status="failed", document=self._mark_failed_quietly(tenant_id, document_id, exc),
                                 reason=message, error_code=code,
                                 seconds=round(time.perf_counter() - started, 3))
        except BaseException as exc:
            self._mark_failed_quietly(tenant_id, document_id, exc)
            raise
        note = None
        if parsed.empty_pages:  # reported, never silently dropped
            listed = ", ".join(map(str, parsed.empty_pages[:20])) + ("…" if len(parsed.empty_pages) > 20 else "")
            note = (f"{len(parsed.empty_pages)} of {parsed.page_count} pages have no extractable text "
                    f"(image-only; OCR them to index): {listed}")
        return IngestOutcome(status="ingested", document=doc, pages=parsed.page_count, chunks=len(chunks),
                             empty_pages=len(parsed.empty_pages), reason=note,
                             seconds=round(time.perf_counter() - started, 3))

    @property
    def indexing(self) -> bool:
        """Whether stored documents wait (``indexing``) for an external serving index (Pinecone
        vectors, OpenSearch full text)."""
        return (isinstance(self._vectors, IndexSync) and self._vectors.serves_external) \
            or any(i.serves_external for i in self._indexes)

    def _mark_failed_quietly(self, tenant_id: str, document_id: uuid.UUID, exc: BaseException) -> Document | None:
        code, message = failure_of(exc)
        try:
            return self._docs.mark_failed(tenant_id, document_id, code=code, message=message)
        except Exception:  # the store may be the thing that is down
            log.exception("could not record the failure of document %s", document_id)
            return None


def failure_of(exc: BaseException) -> tuple[str, str]:
    """``(error_code, message)`` recorded on a document for an error while ingesting it."""
    return (exc.code if isinstance(exc, QuerioError) else "internal_error",
            f"{type(exc).__name__}: {exc}"[:1000])
