"""The ``VectorStore`` used whenever Pinecone serves or shadows vector queries.

Writes go to both stores. pgvector stays the system of record: vectors are written into the
chunk rows in the document's own transaction (``colocated = True``), then copied to Pinecone
after the commit (:meth:`MirroredVectorStore.document_stored`). That keeps ``reconcile``,
``verify`` and a rollback (``QUERIO_VECTOR_BACKEND=pgvector``) possible at any time, at the
cost of 1,536 bytes per chunk row in PostgreSQL.

Reads go to ``serve`` ("pgvector" or "pinecone"). With ``shadow``, a sample of queries
(``shadow_sample_rate``) also goes to the other store, and the overlap of the two top-k id
sets is logged and emitted as the ``VectorShadowAgreement`` metric (percent), so one setting,
``QUERIO_VECTOR_BACKEND``, cuts over once agreement is good, and cuts back as easily.

Pinecone answers are checked against PostgreSQL: a hit with no chunk row (an orphan: a crash
between the commit and the Pinecone write, a missed delete) or whose document is soft-deleted
is counted (``VectorOrphans``), logged, deleted from Pinecone, and the query re-run once.
Hits of documents being reprocessed are just dropped.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from querio.adapters.pinecone_vectors import PineconeVectorStore
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.postgres.vectors import PgVectorStore
from querio.models import ChunkRef, SearchFilters
from querio.observability import MetricUnit, emit
from querio.ports import Vector
from querio.vectors import source

log = logging.getLogger(__name__)

Backend = Literal["pgvector", "pinecone"]


def agreement(a: Sequence[ChunkRef], b: Sequence[ChunkRef]) -> float:
    """Overlap of two top-k answers: ``|A ∩ B| / max(|A|, |B|)`` in [0, 1]; 1.0 when both are empty."""
    ids_a, ids_b = {r.chunk_id for r in a}, {r.chunk_id for r in b}
    if not ids_a and not ids_b:
        return 1.0
    return len(ids_a & ids_b) / max(len(ids_a), len(ids_b))


@dataclass
class ShadowStats:
    """Shadow comparisons made by this process (read by tests and ``health``-style reports)."""

    queries: int = 0
    agreement_sum: float = 0.0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, value: float) -> None:
        with self.lock:
            self.queries += 1
            self.agreement_sum += value

    @property
    def mean(self) -> float | None:
        return self.agreement_sum / self.queries if self.queries else None


class MirroredVectorStore:
    """pgvector + Pinecone (see the module docstring). ``name`` is the serving backend."""

    colocated = True  # the chunk rows keep their vectors, written with the chunks

    def __init__(self, pgvector: PgVectorStore, pinecone: PineconeVectorStore, store: PostgresDocumentStore, *,
                 serve: Backend, shadow: bool = False, shadow_sample_rate: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self.pgvector = pgvector
        self.pinecone = pinecone
        self.store = store
        self.serve = serve
        self.name: str = serve
        self.shadow = shadow
        self.shadow_sample_rate = shadow_sample_rate
        self.shadow_stats = ShadowStats()
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security

    # writes -------------------------------------------------------------------------------------------
    def upsert(self, tenant_id: str, document_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID],
               embeddings: Vector, metadata: Sequence[dict[str, Any]]) -> None:
        """Write into the chunk rows, then copy the document's live vectors to Pinecone."""
        self.pgvector.upsert(tenant_id, document_id, chunk_ids, embeddings, metadata)
        records = source.records_by_id(self.store, tenant_id, chunk_ids)
        self.pinecone.upsert_records(tenant_id, records)

    def delete_document(self, tenant_id: str, document_id: uuid.UUID) -> None:
        self.pinecone.delete_document(tenant_id, document_id)
        self.pgvector.delete_document(tenant_id, document_id)

    @property
    def serves_external(self) -> bool:
        return self.serve == "pinecone"

    def document_stored(self, tenant_id: str, document_id: uuid.UUID, *, replaced: bool = False) -> bool:
        """Copy the document's committed vectors to Pinecone. ``replaced`` (a reprocess: new chunk
        ids) deletes the old records first; a new document skips that delete, because Pinecone
        rate-limits delete-by-metadata per namespace and bulk ingests would hit it. Never raises."""
        try:
            records = source.document_records(self.store, tenant_id, document_id)
            if replaced:
                self.pinecone.delete_document(tenant_id, document_id)
            self.pinecone.upsert_records(tenant_id, records)
        except Exception:
            emit("VectorSyncFailures")
            log.exception("could not copy the vectors of document %s (tenant %s) to Pinecone; "
                          "it is retried", document_id, tenant_id)
            return False
        return True

    def document_purged(self, tenant_id: str, document_id: uuid.UUID) -> None:
        self.pinecone.delete_document(tenant_id, document_id)

    # reads ---------------------------------------------------------------------------------------------
    def query(self, tenant_id: str, vector: Vector, k: int, filters: SearchFilters) -> list[ChunkRef]:
        """The serving store's answer (see the module docstring); a shadow failure never fails it."""
        served = self._query(self.serve, tenant_id, vector, k, filters)
        if self.shadow and k > 0 and self._rng.random() < self.shadow_sample_rate:
            other: Backend = "pgvector" if self.serve == "pinecone" else "pinecone"
            try:
                shadowed = self._query(other, tenant_id, vector, k, filters)
            except Exception:
                self.shadow_stats.errors += 1
                emit("VectorShadowErrors")
                log.warning("shadow query to %s failed", other, exc_info=True)
            else:
                value = agreement(served, shadowed)
                self.shadow_stats.record(value)
                emit("VectorShadowAgreement", round(100 * value, 2), MetricUnit.Percent)
                log.info("vector shadow: %s vs %s top-%d agreement %.2f (tenant %s)", self.serve, other, k, value,
                         tenant_id)
        return served

    def _query(self, backend: Backend, tenant_id: str, vector: Vector, k: int, filters: SearchFilters
               ) -> list[ChunkRef]:
        if backend == "pgvector":
            return self.pgvector.query(tenant_id, vector, k, filters)
        refs = self.pinecone.query(tenant_id, vector, k, filters)
        kept, repaired = self._live_only(tenant_id, refs)
        if repaired and len(kept) < min(k, len(refs)):
            # the orphans are gone now: one more query fills the answer up to k
            kept, _ = self._live_only(tenant_id, self.pinecone.query(tenant_id, vector, k, filters))
        return kept

    def _live_only(self, tenant_id: str, refs: list[ChunkRef]) -> tuple[list[ChunkRef], bool]:
        """Drop hits that are not live chunks; delete (repair) orphans and soft-deleted ones."""
        if not refs:
            return refs, False
        states = source.chunk_states(self.store, tenant_id, [r.chunk_id for r in refs])
        stale = [r.chunk_id for r in refs if states.get(r.chunk_id, "orphan") in ("orphan", "deleted")]
        if stale:
            emit("VectorOrphans", len(stale))
            log.warning("%d Pinecone hit(s) of tenant %s have no live chunk row; deleting them: %s", len(stale),
                        tenant_id, ", ".join(map(str, stale[:5])))
            try:
                self.pinecone.delete_ids(tenant_id, stale)
            except Exception:  # repair is best effort: the query itself still succeeds
                log.warning("could not delete orphan vectors", exc_info=True)
        return [r for r in refs if states.get(r.chunk_id) == "live"], bool(stale)
