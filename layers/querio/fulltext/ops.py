"""``querio fulltext backfill | verify | reconcile``: fill OpenSearch from PostgreSQL and check it.

* **backfill** copies every live chunk (chunks of completed, undeleted documents), read in
  chunk-id order ``batch_size`` at a time (a keyset page over the primary key) and bulk-indexed
  (``_id`` = chunk id, so a re-run overwrites and never duplicates). After each batch OpenSearch
  accepted, the cursor is committed (a ``vector_migrations`` row named
  ``postgres->opensearch:{index}``); a killed run resumes after the last committed batch, a
  completed pass run again starts a new pass. It does not follow writes made behind the cursor:
  set ``QUERIO_OPENSEARCH_URL`` first (every new document is then written to OpenSearch after
  its commit, while PostgreSQL still answers), and run ``reconcile`` for anything else.
* **verify** compares live chunks per tenant in PostgreSQL with records per tenant in the index
  and, on real questions (``{"question": ...}`` JSON lines, e.g. ``../shared/eval/questions.jsonl``,
  asked of every tenant), the top-``k`` answers of the two legs: the overlap per question
  ``|PG ∩ OS| / max(|PG|, |OS|)`` and its mean, the agreement report of the cut-over.
* **reconcile** makes each tenant's records equal its live chunk ids: missing ones are indexed
  from PostgreSQL, records without a live chunk (a missed delete, a soft-deleted document not
  yet purged, a crash between a commit and its write) are deleted. ``dry_run`` only counts.
"""

from __future__ import annotations

import logging
import math
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from querio.adapters.opensearch import OpenSearchFullText
from querio.adapters.postgres.fulltext import PostgresChunkSource
from querio.errors import ValidationFailed
from querio.models import ChunkRef, SearchFilters
from querio.observability import emit
from querio.ports import FullTextSearch

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500  # chunks per step: one bulk request of ~0.6 MB at ~1 KB of text each
REPAIR_BATCH = 1000


@dataclass
class BackfillReport:
    """What a run did (or, with ``dry_run``, would do). Counts are chunks."""

    name: str
    dry_run: bool
    resumed: bool
    start_after: uuid.UUID | None
    total_live: int
    remaining_at_start: int
    copied: int = 0  # by this run
    copied_total: int = 0  # by the whole pass, across interruptions
    batches: int = 0
    requests: int = 0
    per_tenant: dict[str, int] = field(default_factory=dict)
    planned_per_tenant: dict[str, int] = field(default_factory=dict)
    index_created: bool = False
    completed: bool = False
    stopped_early: bool = False


def backfill_name(index: OpenSearchFullText) -> str:
    return f"postgres->opensearch:{index.index}"


def backfill(source: PostgresChunkSource, index: OpenSearchFullText, *, batch_size: int = DEFAULT_BATCH_SIZE,
             dry_run: bool = False, stop_after: int | None = None, restart: bool = False,
             on_start: Callable[[BackfillReport], None] | None = None,
             on_batch: Callable[[BackfillReport, int], None] | None = None) -> BackfillReport:
    """Copy live chunks into the index (module docstring). ``stop_after``: end after that many
    batches (rehearse a resume); ``restart``: ignore an unfinished pass. Raises
    ``ConfigurationError`` (access refused), ``TransientError`` (the cursor stays where it was)."""
    if not 1 <= batch_size <= 5_000:
        raise ValidationFailed(f"batch size must be from 1 to 5,000 (got {batch_size})")
    if stop_after is not None and stop_after < 1:
        raise ValidationFailed(f"--stop-after must be at least 1 (got {stop_after})")
    name = backfill_name(index)
    checkpoint = source.checkpoint(name)
    resumed = bool(checkpoint and checkpoint["status"] == "running" and not restart)
    cursor: uuid.UUID | None = checkpoint["last_chunk_id"] if resumed and checkpoint else None
    planned = source.live_counts()
    report = BackfillReport(name=name, dry_run=dry_run, resumed=resumed, start_after=cursor,
                            total_live=sum(planned.values()), remaining_at_start=source.count_after(cursor),
                            copied_total=int(checkpoint["copied"]) if resumed and checkpoint else 0,
                            planned_per_tenant=planned)
    if dry_run:
        report.batches = math.ceil(report.remaining_at_start / batch_size)
        return report
    report.index_created = index.ensure_index()
    source.begin_pass(name, resumed=resumed)
    if on_start:
        on_start(report)
    per_tenant: dict[str, int] = defaultdict(int)
    while True:
        rows = source.batch_after(cursor, batch_size)
        if not rows:
            break
        report.requests += index.index_chunks(rows)
        for row in rows:
            per_tenant[row.tenant_id] += 1
        cursor = rows[-1].chunk_id
        source.advance(name, cursor, len(rows))  # only after OpenSearch accepted the whole batch
        report.copied += len(rows)
        report.copied_total += len(rows)
        report.batches += 1
        report.per_tenant = dict(per_tenant)
        if on_batch:
            on_batch(report, len(rows))
        if stop_after is not None and report.batches >= stop_after:
            report.stopped_early = source.count_after(cursor) > 0
            if report.stopped_early:
                log.info("backfill %s stopped after %d batches at %s", name, report.batches, cursor)
                return report
    source.finish_pass(name)
    index.refresh()  # what was copied is searchable when the command returns
    report.completed = True
    return report


def overlap(a: Sequence[ChunkRef], b: Sequence[ChunkRef]) -> float:
    """``|A ∩ B| / max(|A|, |B|)`` of two top-k answers, in [0, 1]; 1.0 when both are empty."""
    ids_a, ids_b = {r.chunk_id for r in a}, {r.chunk_id for r in b}
    if not ids_a and not ids_b:
        return 1.0
    return len(ids_a & ids_b) / max(len(ids_a), len(ids_b))


@dataclass
class QuestionAgreement:
    tenant: str
    question: str
    postgres: int  # hits of each leg
    opensearch: int
    overlap: float


@dataclass
class VerifyReport:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # tenant -> {"postgres", "opensearch"}
    counts_match: bool = True
    mismatched_tenants: list[str] = field(default_factory=list)
    k: int = 10
    queries: int = 0
    agreement_at_k: float | None = None  # mean top-k overlap
    min_agreement: float | None = None
    questions: list[QuestionAgreement] = field(default_factory=list)


def verify(source: PostgresChunkSource, postgres: FullTextSearch, index: OpenSearchFullText, *,
           questions: Sequence[str] = (), k: int = 10, tenants: Sequence[str] | None = None,
           on_question: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Counts per tenant, then each question asked of each tenant by both legs (no filters)."""
    if not 1 <= k <= 100:
        raise ValidationFailed("k must be from 1 to 100")
    report = VerifyReport(k=k)
    pg_counts = source.live_counts(tenants)
    os_counts = index.tenant_counts()
    names = sorted(set(pg_counts) | {t for t in os_counts if tenants is None or t in tenants})
    for tenant in names:
        pg_n, os_n = pg_counts.get(tenant, 0), os_counts.get(tenant, 0)
        report.counts[tenant] = {"postgres": pg_n, "opensearch": os_n}
        if pg_n != os_n:
            report.mismatched_tenants.append(tenant)
    report.counts_match = not report.mismatched_tenants
    pairs = [(t, q) for t in sorted(pg_counts) for q in questions]
    nofilter = SearchFilters()
    for i, (tenant, question) in enumerate(pairs):
        pg = postgres.search(tenant, question, k, nofilter)
        os_ = index.search(tenant, question, k, nofilter)
        report.questions.append(QuestionAgreement(tenant, question, len(pg), len(os_), round(overlap(pg, os_), 4)))
        if on_question:
            on_question(i + 1, len(pairs))
    if report.questions:
        values = [q.overlap for q in report.questions]
        report.queries = len(values)
        report.agreement_at_k = round(statistics.fmean(values), 4)
        report.min_agreement = round(min(values), 4)
    return report


@dataclass
class TenantReconcile:
    postgres: int  # live chunks
    opensearch: int  # records before repairs
    missing: int  # live chunks absent from the index (indexed unless dry run)
    orphans: int  # records without a live chunk (deleted unless dry run)


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


def reconcile(source: PostgresChunkSource, index: OpenSearchFullText, *, dry_run: bool = False,
              tenants: Sequence[str] | None = None) -> ReconcileReport:
    """Repair every tenant (or those named) and report what differed. Memory: one tenant's ids."""
    report = ReconcileReport(dry_run=dry_run)
    names = set(tenants) if tenants is not None else set(source.live_counts()) | set(index.tenant_counts())
    for tenant in sorted(names):
        pg_ids = source.live_ids(tenant)
        os_ids: set[str] = set()
        for page in index.list_ids(tenant):
            os_ids.update(page)
        missing = sorted(pg_ids - os_ids)
        orphans = sorted(os_ids - pg_ids)
        report.tenants[tenant] = TenantReconcile(postgres=len(pg_ids), opensearch=len(os_ids), missing=len(missing),
                                                 orphans=len(orphans))
        if dry_run or not (missing or orphans):
            continue
        log.info("reconcile %s: indexing %d missing, deleting %d orphans", tenant, len(missing), len(orphans))
        for start in range(0, len(missing), REPAIR_BATCH):
            ids = [uuid.UUID(i) for i in missing[start:start + REPAIR_BATCH]]
            index.index_chunks(source.chunks_by_id(tenant, ids))
        if orphans:
            index.delete_ids(tenant, orphans)
        emit("FullTextReindexed", len(missing))
        emit("FullTextOrphans", len(orphans))
    if not dry_run:
        index.refresh()
    return report
