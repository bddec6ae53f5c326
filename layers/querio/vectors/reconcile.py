"""``querio vectors reconcile``: make each tenant's Pinecone namespace equal its live pgvector rows.

Per tenant: the live chunk ids in PostgreSQL (``VectorSource.live_ids``) are compared
with every id listed in the namespace (pages of 100). Chunk rows missing in Pinecone (a crash
between a document's commit and its Pinecone write, a failed sync) are re-upserted from the
pgvector column; Pinecone records with no live chunk row (orphans: a missed delete, a
reprocessed document's old chunks) are deleted. ``dry_run`` only counts.

Cost: one list request per 100 records plus the repairs; memory: the ids of one tenant.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from querio.adapters.pinecone_vectors import PineconeVectorStore
from querio.observability import emit
from querio.ports import VectorSource
from querio.vectors import records

log = logging.getLogger(__name__)

REPAIR_BATCH = 1000


@dataclass
class TenantReconcile:
    pgvector: int  # live vectors in PostgreSQL
    pinecone: int  # records listed in the namespace before repairs
    missing: int  # chunk rows absent from Pinecone (re-upserted unless dry run)
    orphans: int  # Pinecone records without a live chunk row (deleted unless dry run)


@dataclass
class ReconcileReport:
    dry_run: bool
    tenants: dict[str, TenantReconcile] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        return sum(t.missing for t in self.tenants.values())

    @property
    def orphans(self) -> int:
        return sum(t.orphans for t in self.tenants.values())


def reconcile(source: VectorSource, target: PineconeVectorStore, *, dry_run: bool = False,
              tenants: Sequence[str] | None = None) -> ReconcileReport:
    """Repair every tenant (or those named) and report what differed. Raises ``TransientError``."""
    report = ReconcileReport(dry_run=dry_run)
    names = set(tenants) if tenants is not None else set(source.live_counts()) | set(target.namespace_counts())
    for tenant in sorted(names):
        pg_ids = source.live_ids(tenant)
        pc_ids: set[str] = set()
        for page in target.list_ids(tenant):
            pc_ids.update(page)
        missing = sorted(pg_ids - pc_ids)
        orphans = sorted(pc_ids - pg_ids)
        report.tenants[tenant] = TenantReconcile(pgvector=len(pg_ids), pinecone=len(pc_ids), missing=len(missing),
                                                 orphans=len(orphans))
        if dry_run or not (missing or orphans):
            continue
        log.info("reconcile %s: re-upserting %d missing, deleting %d orphans", tenant, len(missing), len(orphans))
        for start in range(0, len(missing), REPAIR_BATCH):
            ids = [uuid.UUID(i) for i in missing[start:start + REPAIR_BATCH]]
            target.upsert_records(tenant, records.records_by_id(source, tenant, ids))
        if orphans:
            target.delete_ids(tenant, orphans)
        emit("VectorsReupserted", len(missing))
        emit("VectorOrphans", len(orphans))
    return report
