"""One ``VectorStore`` harness per adapter: pgvector (real PostgreSQL) and Pinecone (the real SDK
against the local stand-in). Both get their chunk rows from the same PostgreSQL helpers, so a
test reads the same for either adapter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from querio.adapters.pinecone_vectors import PineconeVectorStore, chunk_metadata, pinecone_client
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.postgres.vectors import PgVectorStore
from querio.models import Document
from querio.ports import VectorStore
from tests.fixtures.postgres import drafts, ingest
from tests.pinecone_standin.fixture import API_KEY, INDEX, pinecone_standin  # noqa: F401
from tests.pinecone_standin.server import StandinServer


@dataclass
class Added:
    doc: Document
    ids: list[uuid.UUID]  # row-aligned with the vectors given


@dataclass
class Harness:
    backend: str
    store: VectorStore
    pg: PostgresDocumentStore
    standin: StandinServer | None = None

    def add(self, tenant: str, vectors: np.ndarray, *, pages: Sequence[int] | None = None,
            tags: Sequence[str] = (), filename: str | None = None) -> Added:
        """Create a completed document with one chunk row per vector, then ``upsert`` the vectors
        through the adapter under test (pgvector writes them into the rows, Pinecone records them)."""
        n = len(vectors)
        texts = [f"chunk {i} of a document" for i in range(n)]
        doc = ingest(self.pg, tenant, texts, pages=pages, tags=tags,
                     filename=filename or f"{uuid.uuid4().hex[:8]}.pdf")
        with self.pg.connection() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM document_chunks WHERE document_id = %s"
                                              " ORDER BY chunk_index", (doc.id,)).fetchall()]
        chunks = drafts(texts, pages=pages)
        meta = [chunk_metadata(document_id=doc.id, page_number=c.page_number, page_end=c.page_end,
                               chunk_index=c.chunk_index, tags=doc.tags, uploaded_at=doc.uploaded_at) for c in chunks]
        self.store.upsert(tenant, doc.id, ids, vectors.astype(np.float32), meta)
        return Added(doc, ids)


@pytest.fixture(params=["pgvector", "pinecone"])
def harness(request: pytest.FixtureRequest, pg_store: PostgresDocumentStore) -> Iterator[Harness]:
    if request.param == "pgvector":
        yield Harness("pgvector", PgVectorStore(pg_store), pg_store)
        return
    server: StandinServer = request.getfixturevalue("pinecone_standin")
    store = PineconeVectorStore(lambda: pinecone_client(API_KEY, server.url), index_name=INDEX, host=server.url,
                                namespace_prefix=f"t{uuid.uuid4().hex[:6]}-")
    store.check_index()
    yield Harness("pinecone", store, pg_store, server)


def brute_force(vectors: dict[uuid.UUID, np.ndarray], q: np.ndarray, k: int) -> list[uuid.UUID]:
    """Exact cosine top-k ids over ``vectors`` (ties broken by id), for expectations."""
    scored = sorted(((-float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q))), str(cid), cid)
                     for cid, v in vectors.items()))
    return [cid for _, _, cid in scored[:k]]


def as_dict(added: Added, vectors: np.ndarray) -> dict[uuid.UUID, Any]:
    return dict(zip(added.ids, vectors, strict=True))
