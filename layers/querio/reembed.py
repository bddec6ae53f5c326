"""Re-embed a corpus with the running embedder (``querio reembed``), resumably.

Why: every document records the embedder variant that made its vectors (migration 0007), and
a vector search of a corpus embedded by another variant is refused (``EmbedderMismatch``). After
switching the model, its quantization or its export, this brings the corpus over without
re-parsing a single PDF: the stored chunk texts are embedded again, with the same title line in
front as at ingest (``querio.ingest.pipeline.embed_chunks``).

One document per transaction: its vectors and its variant change together, so a killed run
resumes where it stopped (the documents it finished carry the new variant and are not picked
again). A document reprocessed or deleted meanwhile is skipped, not clobbered. Only the ports.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from querio.ingest.pipeline import embed_chunks, embedding_context
from querio.ports import DocumentStore, Embedder, EmbedderVariants, VectorStore
from querio.vectors.sync import IndexSync

#: Documents read per keyset page while listing what to do.
PAGE = 500


@dataclass
class ReembedReport:
    variant: str
    tenant_id: str | None
    documents: int = 0  # to do when the run started
    reembedded: int = 0
    skipped: int = 0  # changed or deleted while this run worked on them
    chunks: int = 0
    seconds: float = 0.0
    tenants: list[str] = field(default_factory=list)  # whose corpus changed (their result caches go)


@dataclass(frozen=True)
class ReembedStep:
    """One finished document, for progress output."""

    done: int
    total: int
    tenant_id: str
    document_id: uuid.UUID
    filename: str
    chunks: int
    status: str  # "reembedded" | "skipped"


def reembed(documents: DocumentStore, variants: EmbedderVariants, vectors: VectorStore, embedder: Embedder, *,
            tenant_id: str | None = None, progress: Callable[[ReembedStep], None] | None = None,
            limit: int | None = None) -> ReembedReport:
    """Embed again, with ``embedder``, every searchable document (of ``tenant_id``, or all tenants)
    whose recorded variant is not ``embedder.variant``. ``limit``: stop after that many documents
    (to rehearse a resume)."""
    started = time.perf_counter()
    variant = embedder.variant
    report = ReembedReport(variant=variant, tenant_id=tenant_id)
    todo: list[tuple[str, uuid.UUID]] = []
    after: uuid.UUID | None = None
    while page := variants.reembed_candidates(variant, tenant_id=tenant_id, after_id=after, limit=PAGE):
        todo += [(d.tenant_id, d.id) for d in page]
        after = page[-1].id
    report.documents = len(todo)
    for tenant, doc_id in todo[:limit]:
        doc = documents.get_document(tenant, doc_id)
        rows = variants.chunk_texts(tenant, doc_id)
        ids = [r[0] for r in rows]
        new = embed_chunks(embedder, embedding_context(doc.title, doc.filename), [r[1] for r in rows],
                           [r[2] for r in rows])
        ok = variants.replace_embeddings(tenant, doc_id, ids, new, variant)
        if ok:
            report.reembedded += 1
            report.chunks += len(ids)
            if tenant not in report.tenants:
                report.tenants.append(tenant)
            if isinstance(vectors, IndexSync):  # an external index mirrors the chunk rows: same ids, new vectors
                vectors.document_stored(tenant, doc_id)
        else:
            report.skipped += 1
        if progress is not None:
            progress(ReembedStep(done=report.reembedded + report.skipped, total=len(todo), tenant_id=tenant,
                                 document_id=doc_id, filename=doc.filename, chunks=len(ids),
                                 status="reembedded" if ok else "skipped"))
    report.seconds = round(time.perf_counter() - started, 3)
    return report
