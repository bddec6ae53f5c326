"""``querio vectors migrate --from pgvector --to pinecone``: copy every live vector, resumably.

How: live vectors (the ``VectorSource`` port) are read in chunk-id order, ``batch_size``
at a time (a keyset page over the primary key), grouped by tenant and upserted into each
tenant's namespace (Pinecone id = chunk id, so a re-run overwrites and never duplicates).
After each batch the cursor is committed (``MigrationCheckpoints``; ``vector_migrations``, migration 0004); a killed
run resumes after the last committed batch. A completed pass, run again, starts a new pass
from the beginning (re-copying is harmless and picks up anything written meanwhile).

What it does not do: follow writes made behind the cursor while it runs. Turn on
``QUERIO_VECTOR_SHADOW`` first (every new document is then written to both stores), and run
``querio vectors reconcile`` afterwards for anything else; ``verify`` tells whether you need to.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from querio.adapters.pinecone_vectors import PineconeVectorStore, VectorRecord
from querio.errors import ValidationFailed
from querio.ports import MigrationCheckpoints, VectorSource
from querio.vectors import records

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500  # rows read from PostgreSQL per step; ~2-3 upsert requests of ~240 vectors


@dataclass
class MigrationReport:
    """What a run did (or, with ``dry_run``, would do). Counts are vectors (chunks)."""

    name: str
    dry_run: bool
    resumed: bool  # this run continued an interrupted pass
    start_after: uuid.UUID | None  # the cursor this run started from
    total_live: int  # live vectors in PostgreSQL when the run started
    remaining_at_start: int  # of those, still to copy (after the cursor)
    copied: int = 0  # copied by this run
    copied_total: int = 0  # copied by the whole pass, across interruptions
    batches: int = 0  # batches by this run
    requests: int = 0  # upsert requests by this run
    per_tenant: dict[str, int] = field(default_factory=dict)  # copied by this run, per tenant
    planned_per_tenant: dict[str, int] = field(default_factory=dict)  # live vectors per tenant
    completed: bool = False
    stopped_early: bool = False  # --stop-after ended it; run again to resume


def migration_name(target: PineconeVectorStore) -> str:
    return f"pgvector->pinecone:{target.index_name}:{target.namespace_prefix}"


def migrate(source: VectorSource, checkpoints: MigrationCheckpoints, target: PineconeVectorStore, *,
            batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False, stop_after: int | None = None,
            restart: bool = False,
            on_start: Callable[[MigrationReport], None] | None = None,
            on_batch: Callable[[MigrationReport, int], None] | None = None) -> MigrationReport:
    """Copy live pgvector vectors to ``target`` (see the module docstring).

    ``batch_size``: rows per step (1-10,000). ``dry_run``: check the index and count, write
    nothing (neither Pinecone nor the checkpoint). ``stop_after``: end after that many batches
    (a deliberate interruption, to rehearse a resume). ``restart``: ignore an unfinished pass.
    ``on_start(report)`` and ``on_batch(report, rows)`` drive a progress display. Raises
    ``ConfigurationError`` (index missing or of the wrong shape), ``TransientError``.
    """
    if not 1 <= batch_size <= 10_000:
        raise ValidationFailed(f"batch size must be from 1 to 10,000 (got {batch_size})")
    if stop_after is not None and stop_after < 1:
        raise ValidationFailed(f"--stop-after must be at least 1 (got {stop_after})")
    target.check_index()
    name = migration_name(target)
    checkpoint = checkpoints.load(name)
    resumed = bool(checkpoint and checkpoint["status"] == "running" and not restart)
    cursor: uuid.UUID | None = checkpoint["last_chunk_id"] if resumed and checkpoint else None
    planned = source.live_counts()
    report = MigrationReport(name=name, dry_run=dry_run, resumed=resumed, start_after=cursor,
                             total_live=sum(planned.values()), remaining_at_start=source.count_after(cursor),
                             copied_total=int(checkpoint["copied"]) if resumed and checkpoint else 0,
                             planned_per_tenant=planned)
    if dry_run:
        report.batches = math.ceil(report.remaining_at_start / batch_size)
        return report
    checkpoints.begin(name, resumed=resumed)
    if on_start:
        on_start(report)
    per_tenant: dict[str, int] = defaultdict(int)
    while True:
        rows = records.batch_after(source, cursor, batch_size)
        if not rows:
            break
        by_tenant: dict[str, list[VectorRecord]] = defaultdict(list)
        for row in rows:
            by_tenant[row.tenant_id].append(row.record)
        for tenant, batch in by_tenant.items():
            report.requests += target.upsert_records(tenant, batch)
            per_tenant[tenant] += len(batch)
        cursor = rows[-1].record.chunk_id
        checkpoints.advance(name, cursor, len(rows))  # only after Pinecone accepted the whole batch
        report.copied += len(rows)
        report.copied_total += len(rows)
        report.batches += 1
        report.per_tenant = dict(per_tenant)
        if on_batch:
            on_batch(report, len(rows))
        if stop_after is not None and report.batches >= stop_after:
            report.stopped_early = source.count_after(cursor) > 0
            if report.stopped_early:
                log.info("migration %s stopped after %d batches at %s", name, report.batches, cursor)
                return report
    checkpoints.finish(name)
    report.completed = True
    return report


def checkpoint(checkpoints: MigrationCheckpoints, name: str) -> dict[str, Any] | None:
    """The stored checkpoint of migration ``name`` (for reports and tests)."""
    return checkpoints.load(name)
