"""``Sweeps`` in memory, over the documents fake's rows (keyset-paged by id, every tenant)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from querio.models import Document, DocumentStatus
from tests.fakes.documents import InMemoryDocuments


class InMemorySweeps:
    def __init__(self, documents: InMemoryDocuments) -> None:
        self.documents = documents

    def _page(self, keep: Callable[[Document], bool], after_id: uuid.UUID | None, limit: int) -> list[Document]:
        docs = sorted((d for d in self.documents.rows.values() if keep(d) and (after_id is None or d.id > after_id)),
                      key=lambda d: d.id)
        return docs[:max(0, limit)]

    def indexing_candidates(self, *, after_id: uuid.UUID | None = None, limit: int = 50) -> list[Document]:
        return self._page(lambda d: d.deleted_at is None and d.processing_status == DocumentStatus.INDEXING,
                          after_id, limit)

    def purge_candidates(self, deleted_before: dt.datetime, *, after_id: uuid.UUID | None = None,
                         limit: int = 50) -> list[Document]:
        return self._page(lambda d: d.deleted_at is not None and d.deleted_at < deleted_before, after_id, limit)

    def archive_candidates(self, idle_before: dt.datetime, *, after_id: uuid.UUID | None = None,
                           limit: int = 50) -> list[Document]:
        return self._page(lambda d: d.deleted_at is None and d.storage_class == "STANDARD"
                          and d.processing_status == DocumentStatus.COMPLETED
                          and (d.accessed_at or d.uploaded_at) < idle_before, after_id, limit)

    def mark_archived(self, tenant_id: str, document_id: uuid.UUID, storage_class: str) -> Document | None:
        doc = self.documents.live(tenant_id, document_id)
        if doc is None:
            return None
        return self.documents.set(doc, storage_class=storage_class,
                                  archived_at=doc.archived_at or dt.datetime.now(dt.UTC))
