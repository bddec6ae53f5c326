"""The protocol by which the domain keeps an external vector index in step with PostgreSQL.

When Pinecone is in play the chunk rows keep their vectors (``colocated`` stays true: they are
written in the document's own transaction), and the external index is written after that
commit. The service calls these hooks; a ``VectorStore`` that does not implement them (plain
pgvector) needs nothing.
"""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable


@runtime_checkable
class IndexSync(Protocol):
    #: True when the external index answers vector queries: then a document stays ``indexing``
    #: (not searchable) until ``document_stored`` succeeded for it.
    serves_external: bool

    def document_stored(self, tenant_id: str, document_id: uuid.UUID, *, replaced: bool = False) -> bool:
        """The document's chunks (and vectors) were committed: copy them to the external index.
        ``replaced``: the document had chunks before (a reprocess), whose records must go.
        Never raises: a failure is logged and counted (``VectorSyncFailures``) and ``False`` is
        returned; the caller retries (see ``QuerioService.sync_pending``)."""

    def document_purged(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """The document is gone from PostgreSQL: delete its external vectors (may raise
        ``TransientError``; the purge is retried by its caller)."""
