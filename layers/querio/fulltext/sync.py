"""The ``FullTextSearch`` wiring installs whenever OpenSearch is configured (issue 15).

It mirrors :mod:`querio.vectors.mirror` (Pinecone) on purpose, through the same protocol
(:class:`~querio.vectors.sync.IndexSync`), so the domain has one mechanism for every external
index:

* **Writes after the commit.** A document's chunks are committed to PostgreSQL first (the
  system of record), then :meth:`SyncedFullText.document_stored` reads them back and bulk-indexes
  them (``_id`` = chunk id: idempotent). A reprocess (``replaced``) then deletes the document's
  other records (the old chunk ids). :meth:`document_purged` deletes the document's records.
* **A failed write is visible and retried.** When OpenSearch serves the full-text leg
  (``QUERIO_FULLTEXT_BACKEND=opensearch``) a stored document stays ``indexing``
  (not searchable) until its chunks are in; a failure is logged and counted
  (``FullTextSyncFailures``, then ``DocumentsPendingIndex`` by the service), the S3 ingest path
  retries its message, and the archive schedule's ``sync_pending`` sweep retries the rest.
  With an ``answer`` leg (``QUERIO_OPENSEARCH_URL`` set, backend still ``postgres``: the
  cut-over's dual-write phase, PostgreSQL answers) nothing waits; ``querio fulltext reconcile``
  repairs what a failure missed.
* **Reads return live chunks only.** Each hit is checked against PostgreSQL (one primary-key
  read): chunks of soft-deleted documents and orphans (a crash between the commit and the
  write, a missed delete) are deleted from the index and counted (``FullTextOrphans``), hits of
  documents being reprocessed are dropped, and the query is re-run once if that left it short.
"""

from __future__ import annotations

import logging
import uuid

from querio.adapters.opensearch import OpenSearchFullText
from querio.adapters.postgres.fulltext import PostgresChunkSource
from querio.models import ChunkRef, SearchFilters
from querio.observability import emit
from querio.ports import FullTextSearch

log = logging.getLogger(__name__)


class SyncedFullText:
    """OpenSearch kept in step with PostgreSQL; ``FullTextSearch`` and ``IndexSync`` at once."""

    def __init__(self, index: OpenSearchFullText, source: PostgresChunkSource, *,
                 answer: FullTextSearch | None = None) -> None:
        """``answer``: the leg that answers searches instead of OpenSearch (PostgreSQL, during
        the cut-over: OpenSearch is then only written to, and nothing waits for it)."""
        self.index = index
        self.source = source
        self.answer = answer
        self.name: str = answer.name if answer is not None else index.name

    @property
    def serves_external(self) -> bool:
        return self.answer is None

    # writes (IndexSync) ----------------------------------------------------------------------------
    def document_stored(self, tenant_id: str, document_id: uuid.UUID, *, replaced: bool = False) -> bool:
        """Index the document's committed chunks; on a reprocess, then delete its other records.
        Never raises: a failure is logged, counted and ``False`` returned (the caller retries)."""
        try:
            chunks = self.source.document_chunks(tenant_id, document_id)
            self.index.index_chunks(chunks)
            if replaced:
                self.index.delete_document(tenant_id, document_id, keep=[c.chunk_id for c in chunks])
        except Exception:
            emit("FullTextSyncFailures")
            log.exception("could not index the chunks of document %s (tenant %s) in OpenSearch; it is retried",
                          document_id, tenant_id)
            return False
        return True

    def document_purged(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Delete the document's records (raises ``TransientError``; the purge is retried)."""
        self.index.delete_document(tenant_id, document_id)

    # reads (FullTextSearch) --------------------------------------------------------------------------
    def search(self, tenant_id: str, query: str, k: int, filters: SearchFilters) -> list[ChunkRef]:
        if self.answer is not None:
            return self.answer.search(tenant_id, query, k, filters)
        refs = self.index.search(tenant_id, query, k, filters)
        kept, repaired = self._live_only(tenant_id, refs)
        if repaired and len(kept) < min(k, len(refs)):
            # the stale records are gone now: one more query fills the answer up to k
            kept, _ = self._live_only(tenant_id, self.index.search(tenant_id, query, k, filters))
        return kept

    def _live_only(self, tenant_id: str, refs: list[ChunkRef]) -> tuple[list[ChunkRef], bool]:
        if not refs:
            return refs, False
        states = self.source.chunk_states(tenant_id, [r.chunk_id for r in refs])
        stale = [r.chunk_id for r in refs if states.get(r.chunk_id, "orphan") in ("orphan", "deleted")]
        if stale:
            emit("FullTextOrphans", len(stale))
            log.warning("%d OpenSearch hit(s) of tenant %s have no live chunk row; deleting them: %s", len(stale),
                        tenant_id, ", ".join(map(str, stale[:5])))
            try:
                self.index.delete_ids(tenant_id, stale)
            except Exception:  # repair is best effort: the search itself still succeeds
                log.warning("could not delete stale full-text records", exc_info=True)
        return [r for r in refs if states.get(r.chunk_id) == "live"], bool(stale)
