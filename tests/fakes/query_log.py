"""``QueryLog`` in memory (its usage figures read the documents fake)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from querio.models import TenantStats
from querio.ports import QueryRecord
from tests.fakes.documents import InMemoryDocuments


class InMemoryQueryLog:
    def __init__(self, documents: InMemoryDocuments) -> None:
        self.documents = documents
        self.records: list[QueryRecord] = []

    def record_query(self, tenant_id: str, user_id: str, query: str, *, response_time_ms: int,
                     chunks_retrieved: int, success: bool) -> None:
        self.records.append(QueryRecord(tenant_id=tenant_id, user_id=user_id, query=query,
                                        response_time_ms=response_time_ms, chunks_retrieved=chunks_retrieved,
                                        success=success, created_at=dt.datetime.now(dt.UTC)))

    def record_queries(self, records: Sequence[QueryRecord]) -> None:
        self.records.extend(records)

    def stats(self, tenant_id: str) -> TenantStats:
        live = [d for d in self.documents.rows.values() if d.tenant_id == tenant_id and d.deleted_at is None]
        by_status: dict[str, int] = {}
        for d in live:
            by_status[str(d.processing_status)] = by_status.get(str(d.processing_status), 0) + 1
        return TenantStats(documents=len(live), documents_by_status=by_status,
                           chunks=sum(d.chunk_count for d in live), pages=sum(d.page_count or 0 for d in live),
                           bytes=sum(d.file_size for d in live),
                           queries=sum(r.tenant_id == tenant_id for r in self.records))

    def recent_queries(self, limit: int) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for r in sorted(self.records, key=lambda r: r.created_at, reverse=True):
            if r.success and r.query:
                seen.setdefault((r.tenant_id, r.query))
        return list(seen)[:limit]
