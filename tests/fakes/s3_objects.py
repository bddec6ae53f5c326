"""``S3Objects`` in memory, over the documents fake's rows."""

from __future__ import annotations

import uuid

from querio.models import Document
from tests.fakes.documents import InMemoryDocuments


def _seq(sequencer: str | None) -> str:
    """S3 sequencers compare as hex of varying length: left-pad, as the SQL does."""
    return (sequencer or "").upper().rjust(64, "0")


class InMemoryS3Objects:
    def __init__(self, documents: InMemoryDocuments) -> None:
        self.documents = documents
        self.events: dict[tuple[str, str, str], str] = {}  # (tenant, bucket, key) -> latest sequencer

    def _of_key(self, tenant_id: str, bucket: str, key: str) -> list[Document]:
        return [d for d in self.documents.rows.values()
                if d.tenant_id == tenant_id and d.s3_bucket == bucket and d.s3_key == key]

    def find_by_s3_key(self, tenant_id: str, bucket: str, key: str) -> Document | None:
        live = [d for d in self._of_key(tenant_id, bucket, key) if d.deleted_at is None]
        return max(live, key=lambda d: (_seq(d.s3_sequencer), d.uploaded_at), default=None)

    def retired_by_key(self, tenant_id: str, bucket: str, key: str) -> list[Document]:
        return sorted((d for d in self._of_key(tenant_id, bucket, key) if d.deleted_at is not None),
                      key=lambda d: d.id)[:100]

    def set_s3_location(self, tenant_id: str, document_id: uuid.UUID, bucket: str, key: str, *,
                        sequencer: str | None = None, etag: str | None = None) -> None:
        doc = self.documents.rows.get(document_id)
        if doc is None or doc.tenant_id != tenant_id or (doc.s3_key is not None and
                                                         (doc.s3_key, doc.s3_bucket) != (key, bucket)):
            return  # never re-bound to another key
        newer = doc.s3_sequencer is None or _seq(sequencer) > _seq(doc.s3_sequencer)
        self.documents.set(doc, s3_bucket=bucket, s3_key=key, s3_etag=etag or doc.s3_etag,
                           s3_sequencer=sequencer if newer else doc.s3_sequencer)

    def record_s3_event(self, tenant_id: str, bucket: str, key: str, *, sequencer: str, event_name: str,
                        etag: str | None, version_id: str | None) -> bool:
        at = (tenant_id, bucket, key)
        if at in self.events and _seq(sequencer) < self.events[at]:
            return False  # a later event of the key is recorded: this one is stale
        self.events[at] = _seq(sequencer)
        return True

    def blob_shared(self, tenant_id: str, storage_path: str, document_id: uuid.UUID) -> bool:
        return any(d.tenant_id == tenant_id and d.storage_path == storage_path and d.id != document_id
                   and d.deleted_at is None for d in self.documents.rows.values())
